"""Keeping channel secrets out of logs.

Apprise logs the URLs it is given — at ``TRACE`` it even prints the parsed
password — and its "privacy" URLs hide the password but not the headers
(``json://host/path?+Authorization=…``), query parameters or path tokens;
``urllib3`` logs request paths. So nothing here relies on
``url(privacy=True)``. Instead:

- :meth:`SecretRedactor.add_url` registers, for each channel URL the notifier
  is given, every part of it that may be a secret: the password, the user
  name and host when they look like tokens, path segments and query values
  that look like tokens, header (``+``) and payload (``-``, ``:``) values —
  both as written and percent-decoded;
- :class:`RedactingFilter`, attached to the ``apprise`` and ``urllib3``
  loggers, rewrites each record (message, arguments, exception text) with
  those secrets replaced by ``***`` and any ``scheme://user:password@``
  reduced to ``scheme://user:***@``, before any handler — including apprise's
  own per-call log capture — sees it.

:func:`display_target` gives the text the notifier reports for a URL:
scheme, host and port only.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, quote, unquote, urlsplit

__all__ = ["SecretRedactor", "RedactingFilter", "REDACTOR", "protect_logs", "protect_url", "display_target",
           "redact", "url_secrets", "PROTECTED_LOGGERS"]

MASK = "***"

#: Loggers whose records pass through the filter.
PROTECTED_LOGGERS = ("apprise", "urllib3", "urllib3.connectionpool", "urllib3.util.retry", "requests",
                     "requests.packages.urllib3")

# apprise URL options whose values are settings, not secrets
_PLAIN_OPTIONS = frozenset({
    "method", "format", "overflow", "mode", "verify", "retry", "wait", "optional", "rto", "cto",
    "emojis", "tz", "from", "to", "cc", "bcc", "name", "smtp", "reply", "lang", "priority",
})
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s/:@]*):(?P<password>[^\s/@]+)@")
_HOSTNAME = re.compile(
    r"^(localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]|([A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*)$")


def _looks_secret(text: str) -> bool:
    return len(text) >= 8 or (len(text) >= 4 and any(c.isdigit() for c in text))


def url_secrets(url: str) -> set[str]:
    """The parts of ``url`` that must never be logged."""
    secrets = {url}
    try:
        parts = urlsplit(url)
        userinfo, _, hostport = parts.netloc.rpartition("@")
    except ValueError:
        return secrets
    if userinfo:
        user, _, password = userinfo.partition(":")
        if len(password) >= 3:
            secrets.add(password)
        if _looks_secret(user):
            secrets.add(user)
    host, port = _split_hostport(hostport)
    if host and not _HOSTNAME.match(host) and len(host) >= 3:
        secrets.add(host)
    if port and not port.isdigit() and len(port) >= 3:  # tgram://BOTID:TOKEN/… puts a token there
        secrets.add(port)
    for segment in parts.path.split("/"):
        if _looks_secret(segment):
            secrets.add(segment)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        special = key[:1] in "+-:"
        if not special and key.lower() in _PLAIN_OPTIONS:
            continue
        if len(value) >= 3:
            secrets.add(value)
            secrets.update(word for word in value.split() if _looks_secret(word))
    if len(parts.fragment) >= 3:
        secrets.add(parts.fragment)
    variants = set()
    for secret in secrets:
        variants.update({secret, unquote(secret), quote(secret, safe=""), quote(unquote(secret), safe="")})
    return {v for v in variants if len(v) >= 3}


def _split_hostport(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        host, _, rest = hostport.partition("]")
        return host + "]", rest.lstrip(":")
    host, _, port = hostport.partition(":")
    return host, port


class SecretRedactor:
    """A process-wide set of secrets and the replacement of them in text."""

    def __init__(self, max_secrets: int = 50_000) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, None] = {}
        self._pattern: re.Pattern[str] | None = None
        self._max = max_secrets

    def add_url(self, url: str) -> None:
        """Register every secret part of a channel URL."""
        self.add(url_secrets(url))

    def add(self, secrets) -> None:
        with self._lock:
            new = [s for s in secrets if s and s not in self._secrets]
            if not new:
                return
            for secret in new:
                self._secrets[secret] = None
            while len(self._secrets) > self._max:  # oldest first
                self._secrets.pop(next(iter(self._secrets)))
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        """``text`` with every registered secret and URL password masked."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)


REDACTOR = SecretRedactor()


def redact(text: str) -> str:
    """Mask the secrets of every channel URL the notifier has been given."""
    return REDACTOR.redact(text)


class RedactingFilter(logging.Filter):
    """Rewrites a record so that no registered secret reaches any handler."""

    def __init__(self, redactor: SecretRedactor = REDACTOR) -> None:
        super().__init__("redact-secrets")
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: keep only its template
            message = str(record.msg)
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_info:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redactor.redact(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


_INSTALLED = RedactingFilter()
_install_lock = threading.Lock()


def protect_logs(names=PROTECTED_LOGGERS) -> None:
    """Attach the redacting filter to the given loggers and their existing children (idempotent)."""
    with _install_lock:
        wanted = set(names)
        existing = [n for n in logging.root.manager.loggerDict if any(n.startswith(w + ".") for w in names)]
        for name in sorted(wanted.union(existing)):
            logger = logging.getLogger(name)
            if _INSTALLED not in logger.filters:
                logger.addFilter(_INSTALLED)


def protect_url(url: str) -> None:
    """Call before handing ``url`` to apprise anywhere (the notifier does it for its URLs)."""
    REDACTOR.add_url(url)
    protect_logs()


def display_target(url: str) -> str:
    """What may be shown of a channel URL: ``scheme://host:port`` (host masked if it is a token)."""
    try:
        parts = urlsplit(url)
        hostport = parts.netloc.rpartition("@")[2]
        host, port = _split_hostport(hostport)
        shown = hostport if _HOSTNAME.match(host or "-") and (not port or port.isdigit()) else MASK
        rest = "/…" if (parts.path.strip("/") or parts.query) else ""
        return f"{parts.scheme}://{shown}{rest}" if parts.scheme else MASK
    except ValueError:
        return MASK
