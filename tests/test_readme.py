"""README.md runs as written: every ```python block is executed, in order, in one namespace
(as a reader pastes them into one notebook), and every output a block announces with a
trailing `# -> TEXT` comment must appear as a whole line of what the blocks print.

A block that truly needs something a test cannot have (a running consortium, a database)
is skipped only when the line just before its opening fence is the marker
`<!-- no-test -->` (an HTML comment: invisible on the rendered page). Keep that rare: data
that a package ships (scikit-learn's datasets) is not a reason.
"""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
NO_TEST = "<!-- no-test -->"

pytestmark = pytest.mark.timeout(300)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(first line number, code, skipped) of each ```python block of a Markdown text."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            skipped = i > 0 and lines[i - 1].strip() == NO_TEST
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if j == len(lines):
                raise ValueError(f"README line {i + 1}: a python block is never closed")
            blocks.append((i + 2, "\n".join(lines[i + 1 : j]) + "\n", skipped))
            i = j
        i += 1
    return blocks


def expected_lines(code: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"#\s*->\s*(.+)$", code, re.MULTILINE)]


def test_block_parser_and_marker():
    text = "x\n```python\na = 1\n```\n<!-- no-test -->\n```python\nb = 2  # -> 2\n```\n```toml\nc\n```\n"
    assert python_blocks(text) == [(3, "a = 1\n", False), (7, "b = 2  # -> 2\n", True)]
    assert expected_lines("print(1)  # -> 1\nprint(2)\nprint(3) # ->  [3, 3] \n") == ["1", "[3, 3]"]


def test_readme_python_blocks_run_as_written(capsys):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3, "README.md lost its analyst examples"
    namespace: dict = {"__name__": "__readme__"}
    expected: list[str] = []
    for line, code, skipped in blocks:
        if skipped:
            continue
        exec(compile(code, f"{README}:{line}", "exec"), namespace)  # noqa: S102
        expected += expected_lines(code)
    printed = {ln.strip() for ln in capsys.readouterr().out.splitlines()}
    assert expected, "README.md announces no output to check"
    missing = [e for e in expected if e not in printed]
    assert not missing, f"README promises output that the blocks do not print: {missing}"
