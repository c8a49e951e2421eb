"""Checking an apprise URL before it is stored, and the parts of it that are safe to show.

A channel URL often *is* a secret (``slack://TokenA/TokenB/TokenC``: the "host"
is a token), so nothing here ever puts the URL, or any part of it but the
scheme and — for services addressed by a host name — the host, into a message.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..store.destinations import ALLOW_ENV, DestinationRefused, check_destination
from .errors import InvalidInput
from .limits import MAX_URL

__all__ = ["ALLOWED_SCHEMES", "SECRET_HOST_SCHEMES", "CheckedUrl", "check_apprise_url", "shown_host"]

# Services the notifier may call. Keys are schemes, values the service name shown when
# apprise is not installed to ask.
ALLOWED_SCHEMES: dict[str, str] = {
    "json": "JSON", "jsons": "JSON", "xml": "XML", "xmls": "XML", "form": "Form", "forms": "Form",
    "mailto": "E-Mail", "mailtos": "E-Mail",
    "slack": "Slack", "discord": "Discord", "msteams": "Microsoft Teams", "tgram": "Telegram",
    "ntfy": "ntfy", "ntfys": "ntfy", "gotify": "Gotify", "gotifys": "Gotify",
    "pover": "Pushover", "pbul": "Pushbullet", "matrix": "Matrix", "matrixs": "Matrix",
    "mmost": "Mattermost", "mmosts": "Mattermost", "rocket": "Rocket.Chat", "rockets": "Rocket.Chat",
    "opsgenie": "Opsgenie", "pagerduty": "PagerDuty", "signal": "Signal API", "signals": "Signal API",
    "zulip": "Zulip", "webex": "Webex Teams", "gchat": "Google Chat", "apprise": "Apprise API",
    "apprises": "Apprise API",
}

# Schemes whose host part is a real host name (not a token), so showing it reveals nothing secret.
HOSTNAME_SCHEMES = frozenset(
    {"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos", "ntfy", "ntfys",
     "gotify", "gotifys", "matrix", "matrixs", "mmost", "mmosts", "rocket", "rockets",
     "signal", "signals", "apprise", "apprises"}
)

# Schemes whose "host" may be a credential (an ntfy topic, a Matrix token): not kept in plain text.
SECRET_HOST_SCHEMES = frozenset({"ntfy", "ntfys", "matrix", "matrixs"})

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_apprise_lock = threading.Lock()


@dataclass(frozen=True)
class CheckedUrl:
    url: str
    scheme: str
    host: str | None
    service: str


_URL_START = re.compile(r"(?:^|[\s,;|])[A-Za-z][A-Za-z0-9+.-]*://")


def _count_urls(url: str) -> int:
    """URLs in the text, split the way apprise splits a list (spaces, commas …)."""
    return len(_URL_START.findall(url))


def _instantiate(url: str) -> tuple[bool, str | None] | None:
    """(accepted, service name) from apprise, or None when apprise is not installed."""
    try:
        import apprise
    except ImportError:
        return None
    logger = logging.getLogger("apprise")
    with _apprise_lock:  # apprise logs URL parts when it rejects one: keep them out of every log
        previous, logger.disabled = logger.disabled, True
        try:
            plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        except Exception:
            plugin = None
        finally:
            logger.disabled = previous
    if plugin is None:
        return False, None
    return True, getattr(plugin, "service_name", None)


def check_apprise_url(url: str) -> CheckedUrl:
    """The URL, checked: exactly one, a scheme on the allow-list, accepted by apprise when it is installed."""
    url = url.strip()
    if not url:
        raise InvalidInput("apprise_url is empty: give one apprise URL, for example slack://TokenA/TokenB/TokenC.")
    if len(url) > MAX_URL:
        raise InvalidInput(f"apprise_url is {len(url):,} characters long; the limit is {MAX_URL:,}.")
    count = _count_urls(url)
    if count == 0:
        raise InvalidInput(
            "apprise_url is not a URL: write it as scheme://..., for example "
            "slack://TokenA/TokenB/TokenC or mailtos://user:app-password@gmail.com."
        )
    if count > 1:
        raise InvalidInput(
            f"apprise_url holds {count} URLs; a channel has exactly one. "
            "Add each destination as its own channel with its own name."
        )
    if any(ch.isspace() for ch in url):
        raise InvalidInput("apprise_url contains spaces; a URL has none (write a space inside it as %20).")
    scheme = _SCHEME.match(url)
    if scheme is None:
        raise InvalidInput("apprise_url must start with its scheme, like slack:// or jsons://.")
    name = scheme.group(1).lower()
    if name not in ALLOWED_SCHEMES:
        allowed = ", ".join(sorted(ALLOWED_SCHEMES))
        raise InvalidInput(f"The scheme {name[:20]!r} is not supported. Supported schemes: {allowed}.")
    service = ALLOWED_SCHEMES[name]
    verdict = _instantiate(url)
    if verdict is not None:
        accepted, apprise_service = verdict
        if not accepted:
            raise InvalidInput(
                f"This {service} URL ({name}://) is not in a form apprise accepts: check the parts "
                f"the {service} service needs (see the apprise wiki page for {name}://)."
            )
        service = apprise_service or service
    try:
        check_destination(url)
    except DestinationRefused as refused:
        raise InvalidInput(f"This {service} URL cannot be used: {refused}.", allow_setting=ALLOW_ENV) from None
    return CheckedUrl(url=url, scheme=name, host=shown_host(name, url), service=service)


def shown_host(scheme: str, url: str) -> str | None:
    """The URL's host when it is a plain host name, None when it is (or may be) a credential.

    ``ntfy://TOPIC`` (the public ntfy server) and ``matrix://TOKEN?mode=t2bot``
    put the secret where a host would be; ``ntfys://host/topic`` does not.
    """
    if scheme not in HOSTNAME_SCHEMES:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if scheme in ("ntfy", "ntfys") and not parts.path.strip("/"):
        return None  # the "host" is the topic, which is all it takes to read and send
    if scheme in ("matrix", "matrixs") and ("t2bot" in parts.query.lower() or not (parts.username or
                                                                                    parts.path.strip("/"))):
        return None  # the "host" is an access token
    return host
