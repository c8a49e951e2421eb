"""A rule text with its line index: character offsets turned into spans and positions."""

from __future__ import annotations

import bisect
import re

from . import ast as a

__all__ = ["SourceText"]


class SourceText:
    """A text with a line index, turning character offsets into spans."""

    def __init__(self, text: str):
        self.text = text
        self._length = len(text)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def span(self, start: int, end: int) -> a.Span:
        length = self._length
        if start > length:
            start = length
        if end < start:
            end = start
        elif end > length:
            end = length
        return a.Span(start, end, self._line_starts)

    def line_text(self, line: int) -> str:
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]
