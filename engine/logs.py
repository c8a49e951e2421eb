"""The engine's logs: one JSON object per line (or readable text), with secrets masked.

    setup_logging("info", "json", replica="engine-0")
    protect_secrets(database_url=..., tokens=[influx_token, secret_key])

Every record goes through :class:`engine.notify.redact.RedactingFilter` on the
handler: channel-URL secrets the notifier registered, the secrets given to
:func:`protect_secrets` (the database password, the InfluxDB token, the
encryption key) and any ``scheme://user:password@`` are masked in the message
and the exception text. A JSON line holds ``time`` (RFC 3339, UTC), ``level``,
``logger``, ``message``, ``replica``, the ``extra`` fields of the call
(``event``, ``at``, ``rule_ids`` …) and ``error`` (the exception, one string).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Iterable

from .notify.redact import REDACTOR, RedactingFilter

__all__ = ["JsonFormatter", "setup_logging", "protect_secrets", "default_format"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "replica"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def __init__(self, replica: str | None = None) -> None:
        super().__init__()
        self.replica = replica

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.replica:
            out["replica"] = self.replica
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = REDACTOR.redact(self.formatException(record.exc_info))
        if record.exc_text:
            out["error"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def default_format(stream=None) -> str:
    """``text`` on a terminal, else ``json``."""
    stream = stream or sys.stderr
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def setup_logging(level: str = "info", fmt: str | None = None, *, replica: str | None = None,
                  stream=None) -> None:
    """Route every log record to ``stream`` (stderr) in ``fmt`` (json / text), secrets masked."""
    stream = stream or sys.stderr
    fmt = fmt or default_format(stream)
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter(replica) if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    for noisy in ("alembic", "apprise", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def protect_secrets(database_url: str | None = None, tokens: Iterable[str | None] = ()) -> None:
    """Register the store's password and other tokens so that no log line shows them."""
    secrets = {t for t in tokens if t and len(t) >= 4}
    if database_url:
        try:
            from sqlalchemy.engine import make_url

            password = make_url(database_url).password
            if password and len(str(password)) >= 3:
                secrets.add(str(password))
        except Exception:  # an unparsable URL: its userinfo is still masked by the pattern
            pass
    REDACTOR.add(secrets)
