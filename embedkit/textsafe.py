"""Text that is safe to print: file names and reasons as one visible line.

A file name may hold any byte but ``/`` and NUL: a newline in it could forge a
line of embedkit's output (a fake ``skipped`` line), an escape sequence could
rewrite the terminal, and bytes that are not UTF-8 (kept by Python as lone
surrogates) cannot be printed at all. :func:`printable` shows each such
character as a Python-style escape, so every path prints as exactly one line.
"""

from __future__ import annotations

import os
import unicodedata

# Format characters that reorder or hide text (bidirectional overrides and
# isolates): a name could otherwise display as something it is not.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _unsafe(char: str) -> bool:
    if char.isprintable() and char not in _BIDI_CONTROLS:
        return False
    if char == " ":
        return False
    category = unicodedata.category(char)
    # Cc: C0/C1 controls; Cs: surrogates; Zl/Zp: line and paragraph separators.
    return category in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI_CONTROLS


def printable(text) -> str:
    """``text`` (a str, bytes or path) with control characters, line breaks,
    bidirectional overrides and undecodable bytes escaped (``\\n``, ``\\x1b``,
    ``\\xff``, ``\\u202e``); other text, non-ASCII letters included, unchanged."""
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    elif not isinstance(text, str):
        text = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    if text.isprintable() and not _BIDI_CONTROLS.intersection(text):
        return text
    return "".join(_escape(c) if _unsafe(c) else c for c in text)


def skipped_line(error: dict) -> str:
    """``skipped PATH: REASON`` for a ``{"path", "reason"}`` record, as one safe line."""
    return f"skipped {printable(error['path'])}: {printable(error['reason'])}"
