"""Characters the data source cannot receive: lone surrogates, raw or written as ``\\uD800``–``\\uDFFF``.

A UTF-16 surrogate is half of a character, not a character: it has no UTF-8
form, so a query (or a stored rule, or a notification) holding one cannot be
encoded at all. Rules are shared in merged queries, so one such character
would fail every user's rules on that measurement; it is refused where it is
written, with its position.
"""

from __future__ import annotations

import re

__all__ = ["surrogate_problems"]

_ESCAPED = re.compile(r"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})")


def _is_surrogate(code: int) -> bool:
    return 0xD800 <= code <= 0xDFFF


def surrogate_problems(text: str) -> list[tuple[int, int, str, str]]:
    """``(start, end, message, hint)`` for each lone surrogate in ``text``, raw or escaped."""
    found = []
    for index, char in enumerate(text):
        if _is_surrogate(ord(char)):
            found.append((index, index + 1, f"U+{ord(char):04X} is a lone surrogate, not a character: "
                          "the data source cannot receive it",
                          "remove it; send the text as proper Unicode (a surrogate pair must be one character)"))
    for match in _ESCAPED.finditer(text):
        if len(match.group(1)) % 2 == 1:  # an odd run of backslashes: the last one starts an escape
            start = match.start() + len(match.group(1)) - 1
            found.append((start, match.end(), f"`\\u{match.group(2)}` is a lone surrogate, not a character: "
                          "the data source cannot receive it",
                          "write the character itself (\\u escapes cover U+0000–U+FFFF, and U+D800–U+DFFF "
                          "are not characters)"))
    return sorted(found)
