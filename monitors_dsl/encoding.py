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

_RAW = re.compile("[\ud800-\udfff]")
_ESCAPED = re.compile(r"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})")


def surrogate_problems(text: str) -> list[tuple[int, int, str, str]]:
    """``(start, end, message, hint)`` for each lone surrogate in ``text``, raw or escaped."""
    found = []
    for match in _RAW.finditer(text):
        found.append((match.start(), match.end(), f"U+{ord(match.group()):04X} is a lone surrogate, not a "
                      "character: the data source cannot receive it",
                      "remove it; send the text as proper Unicode (a surrogate pair must be one character)"))
    if "\\" not in text:
        return found
    for match in _ESCAPED.finditer(text):
        if len(match.group(1)) % 2 == 1:  # an odd run of backslashes: the last one starts an escape
            start = match.start() + len(match.group(1)) - 1
            found.append((start, match.end(), f"`\\u{match.group(2)}` is a lone surrogate, not a character: "
                          "the data source cannot receive it",
                          "write the character itself (\\u escapes cover U+0000–U+FFFF, and U+D800–U+DFFF "
                          "are not characters)"))
    return sorted(found)
