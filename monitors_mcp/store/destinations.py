"""Where a channel URL may send: never to the server's own network unless the operator allows it.

A channel is a user's apprise URL, and the engine sends to it from inside the
deployment: ``json://127.0.0.1:8181/…`` or ``json://169.254.169.254/latest``
would let any user reach internal services with their own method, headers and
body. So the host a URL makes the notifier connect to is refused when it is,
or resolves to, a loopback, link-local, private, unique-local, shared,
multicast, reserved or unspecified address — checked when the channel is
added (``monitors_mcp.service.channels``) and again before each delivery
(``engine.notify.deliver``), since a name may resolve elsewhere later.

Which host: the URL's own host for services addressed by a host name
(``json``, ``ntfy``, ``gotify``, ``matrix`` …), the SMTP server for e-mail
(``smtp=`` or the mail domain), the organisation's host for Zulip. Services
with a fixed vendor host (Slack, Discord, Telegram …) carry tokens where a
host would be, so nothing of theirs is looked up.

``MONITORS_CHANNEL_ALLOW_HOSTS`` (comma-separated) lets the operator allow
targets anyway: addresses or networks (``10.1.2.3``, ``10.0.0.0/8``,
``fd00::/8``), host names (``hooks.internal``) and name suffixes
(``*.corp.example``). JSON, XML and form webhooks may only ``POST``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

__all__ = ["ALLOW_ENV", "AllowList", "DestinationRefused", "check_destination", "destination_hosts"]

ALLOW_ENV = "MONITORS_CHANNEL_ALLOW_HOSTS"

_HOST_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms", "gotify", "gotifys", "matrix",
                           "matrixs", "mmost", "mmosts", "rocket", "rockets", "signal", "signals", "apprise",
                           "apprises"})
_WEBHOOK_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})


class DestinationRefused(ValueError):
    """A URL the notifier must not send to; the message is safe to show (it names no secret)."""


@dataclass(frozen=True)
class AllowList:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> AllowList:
        networks, names, suffixes = [], set(), []
        for entry in (text or "").split(","):
            entry = entry.strip().lower().strip("[]")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("*."):
                suffixes.append(entry[1:])
            else:
                names.add(entry.rstrip("."))
        return cls(tuple(networks), frozenset(names), tuple(suffixes))

    @classmethod
    def from_env(cls) -> AllowList:
        return cls.parse(os.environ.get(ALLOW_ENV))

    def allows_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def allows_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self.networks if network.version == address.version)


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (not address.is_global or address.is_multicast or address.is_loopback or address.is_link_local
            or address.is_private or address.is_reserved or address.is_unspecified)


def destination_hosts(url: str) -> list[str]:
    """The host names or addresses ``url`` makes the notifier connect to (empty: a vendor's fixed host)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError as error:
        raise DestinationRefused(f"the URL's host cannot be read ({error})") from None
    scheme = parts.scheme.lower()
    query = {k.lower(): v for k, v in parse_qs(parts.query).items()}
    hosts: list[str] = []
    if scheme in _HOST_SCHEMES or (scheme in ("ntfy", "ntfys") and parts.path.strip("/")):
        hosts.append(host or "")
    elif scheme in ("mailto", "mailtos"):
        hosts.extend(query.get("smtp", [])[:1] or ([host] if host else []))
    elif scheme == "zulip" and host and "." in host:
        hosts.append(host)
    return [h for h in hosts if h is not None]


def _check_method(url: str) -> None:
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in _WEBHOOK_SCHEMES:
        return
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if key.lower() == "method" and any(value.strip().upper() != "POST" for value in values):
            raise DestinationRefused(
                "webhook channels send with POST only: remove method=… from the URL (or set method=POST)")


def check_destination(url: str, *, allow: AllowList | None = None, resolve: bool = True,
                      unresolvable_ok: bool = True) -> None:
    """Raise :class:`DestinationRefused` when ``url`` would send to an internal address.

    ``resolve``: look host names up (every address they resolve to must be
    allowed). ``unresolvable_ok``: a name that does not resolve now is let
    through (adding a channel offline); delivery checks again.
    """
    _check_method(url)
    allow = AllowList.from_env() if allow is None else allow
    for host in destination_hosts(url):
        host = host.strip().strip("[]")
        if not host:
            raise DestinationRefused("the URL has no host to send to")
        if allow.allows_name(host):
            continue
        literal = _literal(host)
        for address in [literal] if literal is not None else _addresses(host, resolve, unresolvable_ok):
            if _internal(address) and not allow.allows_address(address):
                what = "an internal address" if literal is not None else f"a name for an internal address ({address})"
                raise DestinationRefused(
                    f"the URL's host {_shown(host)} is {what}: notifications may only go to public hosts. "
                    f"An operator can allow it with {ALLOW_ENV}")


def _literal(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _addresses(host: str, resolve: bool, unresolvable_ok: bool):
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        if unresolvable_ok:
            return []
        raise DestinationRefused(f"the URL's host {_shown(host)} cannot be resolved") from None
    found = []
    for info in infos:
        try:
            found.append(ipaddress.ip_address(info[4][0].split("%")[0]))
        except ValueError:
            continue
    return found


def _shown(host: str) -> str:
    return repr(host[:80])
