"""Outside text (live names and ids, manifest values) as the scan and policy renderers show it.

Every value from the live state or a manifest passes through `shown` (terminal, CI log) or `md_code`
(markdown) at the point where it is rendered, so no control, format or line-breaking character reaches a
terminal, and nothing in a value can close its code span, open HTML, link or mention anyone, or start a
line of markdown.
"""

from __future__ import annotations

import re
import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_BACKTICKS = re.compile(r"`+")


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def shown(text: str) -> str:
    """`text` on one line with every control, format and line-breaking character escaped (`\\x1b`, `\\u202e`)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _ESCAPED_CATEGORIES else c for c in text)


def md_code(value: str, *, in_table: bool = False) -> str:
    """`value` as a markdown code span that no character of it can close or leave."""
    text = shown(value)
    if in_table:
        text = text.replace("|", "\\|")
    if not text:
        return "` `"
    ticks = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"
