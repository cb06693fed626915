"""pytest-benchmark suite: `pytest benchmarks/ --benchmark-only` (small sizes by default,
`--full-sizes` for the sizes the issues' targets are stated at)."""

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--full-sizes", action="store_true", default=False, help="benchmark at full sizes"
    )


@pytest.fixture(scope="session")
def full_sizes(request) -> bool:
    return request.config.getoption("--full-sizes")
