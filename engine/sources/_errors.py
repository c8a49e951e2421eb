"""The one error every time-series source raises: ``SourceError``.

    SourceError (Exception)
      .source   which source failed: "influxdb3 http://host:8181 database 'db'",
                "data directory ./data", "in-memory tables" …
      .kind     a stable code for the cause, one of KINDS
      .cause    the cause in words ("unreachable", "wrong token" …)
      .detail   the server's or the library's own message, verbatim

``str(error)`` reads ``<source>: <cause>: <detail>``: one line that names the
source and the cause, fit to print at the command line as it is.
"""

from __future__ import annotations

__all__ = ["SourceError", "KINDS"]

#: kind → the cause in words, used when no other wording is given
KINDS = {
    "config": "not configured",
    "unreachable": "unreachable",
    "unauthorized": "wrong or missing token",
    "forbidden": "token not allowed",
    "not_found": "not found",
    "timeout": "timed out",
    "bad_data": "not valid data",
    "read_only": "read-only",
    "query": "query failed",
}


class SourceError(Exception):
    """A source could not answer: which source, why (``kind``/``cause``) and what it said (``detail``)."""

    def __init__(self, source: str, kind: str, detail: str = "", *, cause: str | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown SourceError kind {kind!r}")
        self.source = source
        self.kind = kind
        self.cause = cause or KINDS[kind]
        self.detail = " ".join(str(detail).split()) if detail else ""
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.source}: {self.cause}"
        return f"{text}: {self.detail}" if self.detail else text

    def __reduce__(self):
        return (_rebuild, (self.source, self.kind, self.detail, self.cause))


def _rebuild(source, kind, detail, cause):
    return SourceError(source, kind, detail, cause=cause)
