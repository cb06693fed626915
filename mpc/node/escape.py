"""Attacker-controlled text (field names, column names, keys' comments, HTTP paths) made safe
for one log line or one audit reason: control characters, newlines and non-printables are
escaped (\\n, \\x1b, \\u2028), and the result is cut to a bounded length."""

from __future__ import annotations

MAX_TEXT = 300


def escape(text: object, limit: int = MAX_TEXT) -> str:
    s = str(text)
    out = []
    for ch in s[: limit * 2]:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and ch not in "\u2028\u2029":
            out.append(ch)
        else:
            c = ord(ch)
            out.append({10: "\\n", 13: "\\r", 9: "\\t"}.get(c) or (
                f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"))
    r = "".join(out)
    return r if len(r) <= limit and len(s) <= limit * 2 else r[:limit] + "…"
