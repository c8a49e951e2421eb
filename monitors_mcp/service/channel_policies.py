"""A channel's policies: grouping its notifications into one message, and a window when it is muted.

    policies = {"group_by": ["rule", "region"], "group_wait": "30s", "group_interval": "5m",
                "mute_during": 'sat-sun in "Europe/Paris"'}

- ``group_by``: label names (``rule`` is the rule's name) whose values put notifications in one group;
  ``[]`` or ``null`` means no grouping (one message per notification);
- ``group_wait``: how long the first notification of a new group waits for others, ``0s`` to ``1h``
  (default ``30s``);
- ``group_interval``: after a group's message, how long newer notifications of that group wait to be
  sent together, ``10s`` to ``24h`` and at least ``group_wait`` (default ``5m``);
- ``mute_during``: a time window (``mon-fri 22:00-07:00 in "Europe/Berlin"``) during which nothing is
  sent on the channel, stored in its canonical form; ``null`` or ``""`` means never muted;
- ``group_title``, ``group_message``: Jinja2 templates of a group's message over ``alerts`` (each
  notification's variables plus its ``title``), ``firing``, ``resolved``, ``group`` (the group's values)
  and ``severity`` (the highest firing one); ``null`` or ``""`` for the defaults, which list each title.

Durations are written as in the rule language (``30s``, ``5m``, ``1h30m``). On an update a key that is
absent keeps its value, a key set to ``null`` goes back to its default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import null as sa_null

from monitors_dsl.ast import duration_parts
from monitors_dsl.errors import closest

from .errors import InvalidInput, Unavailable
from .times import parse_duration

__all__ = ["ChannelPolicies", "DEFAULT_GROUP_INTERVAL", "DEFAULT_GROUP_WAIT", "POLICY_KEYS", "check_policies",
           "duration_text"]

DEFAULT_GROUP_WAIT = 30
DEFAULT_GROUP_INTERVAL = 300
MAX_GROUP_WAIT = 3600
MIN_GROUP_INTERVAL = 10
MAX_GROUP_INTERVAL = 86_400
MAX_GROUP_LABELS = 16
MAX_LABEL = 128
MAX_WINDOW_TEXT = 500
MAX_TEMPLATE = 4000
POLICY_KEYS = ("group_by", "group_wait", "group_interval", "mute_during", "group_title", "group_message")
#: what a group template sees (each of ``alerts`` has a single notification's variables and its ``title``)
GROUP_TEMPLATE_VARIABLES = ("alerts", "firing", "resolved", "group", "severity")
_ZERO = re.compile(r"(?:0+[smhdw])+\Z", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


@dataclass(frozen=True)
class ChannelPolicies:
    """The stored columns: ``None`` is the default (no grouping, 30 s, 300 s, never muted)."""

    group_by: tuple[str, ...] | None = None
    group_wait_seconds: int | None = None
    group_interval_seconds: int | None = None
    mute_during: str | None = None
    group_title: str | None = None
    group_message: str | None = None

    @classmethod
    def of(cls, channel) -> ChannelPolicies:  # noqa: ANN001 - a NotificationChannel row
        return cls(tuple(channel.group_by) if channel.group_by else None, channel.group_wait_seconds,
                   channel.group_interval_seconds, channel.mute_during, channel.group_title,
                   channel.group_message)

    def store(self, channel) -> None:  # noqa: ANN001
        channel.group_by = list(self.group_by) if self.group_by else sa_null()  # SQL NULL, not JSON null
        channel.group_wait_seconds = self.group_wait_seconds
        channel.group_interval_seconds = self.group_interval_seconds
        channel.mute_during = self.mute_during
        channel.group_title = self.group_title
        channel.group_message = self.group_message

    def shown(self) -> dict[str, Any]:
        """What listings show: the values in force, defaults included."""
        return {
            "group_by": list(self.group_by or ()),
            "group_wait": duration_text(_or(self.group_wait_seconds, DEFAULT_GROUP_WAIT)),
            "group_interval": duration_text(_or(self.group_interval_seconds, DEFAULT_GROUP_INTERVAL)),
            "mute_during": self.mute_during,
            "group_title": self.group_title,
            "group_message": self.group_message,
        }


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def duration_text(seconds: int) -> str:
    """``330`` → ``5m30s``, ``0`` → ``0s``: the language's canonical duration."""
    return "".join(f"{count}{unit}" for count, unit in duration_parts(seconds)) or "0s"


def check_policies(given: Mapping[str, Any] | None, current: ChannelPolicies = ChannelPolicies()) -> ChannelPolicies:
    """``current`` with the settings in ``given`` applied and checked; ``InvalidInput`` names what is wrong."""
    if given is None:
        return current
    if not isinstance(given, Mapping):
        raise InvalidInput("policies must be an object such as {\"group_by\": [\"rule\"], \"group_wait\": \"30s\"}.",
                           allowed=list(POLICY_KEYS))
    for key in given:
        if key not in POLICY_KEYS:
            near = closest(str(key), POLICY_KEYS)
            raise InvalidInput(f"policies has no setting {str(key)[:40]!r}: "
                               + (f"did you mean {near!r}?" if near else f"the settings are {', '.join(POLICY_KEYS)}."),
                               allowed=list(POLICY_KEYS))
    values = {
        "group_by": current.group_by, "group_wait_seconds": current.group_wait_seconds,
        "group_interval_seconds": current.group_interval_seconds, "mute_during": current.mute_during,
        "group_title": current.group_title, "group_message": current.group_message,
    }
    if "group_by" in given:
        values["group_by"] = _group_by(given["group_by"])
    if "group_wait" in given:
        values["group_wait_seconds"] = _seconds("group_wait", given["group_wait"], 0, MAX_GROUP_WAIT)
    if "group_interval" in given:
        values["group_interval_seconds"] = _seconds("group_interval", given["group_interval"], MIN_GROUP_INTERVAL,
                                                    MAX_GROUP_INTERVAL)
    if "mute_during" in given:
        values["mute_during"] = _window(given["mute_during"])
    for key in ("group_title", "group_message"):
        if key in given:
            values[key] = _template(key, given[key])
    wait = _or(values["group_wait_seconds"], DEFAULT_GROUP_WAIT)
    interval = _or(values["group_interval_seconds"], DEFAULT_GROUP_INTERVAL)
    if interval < wait:
        raise InvalidInput(
            f"group_interval ({duration_text(interval)}{'' if values['group_interval_seconds'] is not None else ', the default'}) "
            f"is shorter than group_wait ({duration_text(wait)}): a group already told would hear sooner than a "
            "new one; make group_interval at least group_wait.")
    return ChannelPolicies(**values)


def _group_by(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")] if value.strip() else []
    if not isinstance(value, (list, tuple)):
        raise InvalidInput("group_by must be a list of label names, e.g. [\"rule\", \"region\"] (rule is the "
                           "rule's name); [] for no grouping.")
    if len(value) > MAX_GROUP_LABELS:
        raise InvalidInput(f"group_by names {len(value)} labels; at most {MAX_GROUP_LABELS} are allowed.")
    names: list[str] = []
    for index, name in enumerate(value):
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"group_by item {index + 1} is not a label name: give names such as \"rule\" or "
                               "\"region\".")
        name = name.strip()
        if len(name) > MAX_LABEL or _CONTROL.search(name):
            raise InvalidInput(f"group_by item {index + 1} is not a label name: at most {MAX_LABEL} printable "
                               "characters.")
        if name in names:
            raise InvalidInput(f"group_by names {name!r} twice.")
        names.append(name)
    return tuple(names) or None


def _seconds(what: str, value: Any, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a duration written like the language's: \"30s\", \"5m\", \"1h\".")
    text = value.strip().lower()
    if _ZERO.match(text):
        seconds = 0
    else:
        seconds = int(parse_duration(what, value).total_seconds())
    if not low <= seconds <= high:
        raise InvalidInput(f"{what} {value.strip()[:40]!r} is out of range: give {duration_text(low)} to "
                           f"{duration_text(high)}.", allowed=f"{duration_text(low)} to {duration_text(high)}")
    return seconds


def _window(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("mute_during must be a time window such as 'sat-sun' or "
                           "'mon-fri 22:00-07:00 in \"Europe/Berlin\"'.")
    if not value.strip():
        return None
    if len(value) > MAX_WINDOW_TEXT:
        raise InvalidInput(f"mute_during is longer than {MAX_WINDOW_TEXT} characters.")
    parse_window = _window_parser()
    if parse_window is None:
        raise Unavailable("this server's rule language has no time windows, so mute_during cannot be set.",
                          code="windows_unavailable")
    try:
        window = parse_window(value)
    except ValueError as error:
        raise InvalidInput(f"mute_during {value[:80]!r}: {_where(error)}", code="invalid_window",
                           diagnostics=[d.to_dict() for d in getattr(error, "diagnostics", [])]) from None
    return window.text


def _template(what: str, value: Any) -> str | None:
    """A group template, checked as the language checks a rule's: syntax, variables, constant sizes."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a Jinja2 template, e.g. \"{{{{ alerts | length }}}} alerts\".")
    if not value.strip():
        return None
    if len(value) > MAX_TEMPLATE:
        raise InvalidInput(f"{what} is longer than {MAX_TEMPLATE:,} characters.")
    from monitors_dsl.errors import did_you_mean
    from monitors_dsl.templates import sandbox, template_problems

    for code, line, message, hint in template_problems(value):
        if code != "unknown-template-variable":
            raise InvalidInput(f"{what}, line {line}: {message}" + (f" ({hint})" if hint else ""),
                               code="invalid_template")
    env = sandbox()
    for name in sorted(_undeclared(env, value)):
        if name not in GROUP_TEMPLATE_VARIABLES and name not in env.globals:
            near = did_you_mean(name, GROUP_TEMPLATE_VARIABLES)
            raise InvalidInput(
                f"{what}: unknown template variable `{name}`" + (f" ({near})" if near else "")
                + f"; a group template sees {', '.join(GROUP_TEMPLATE_VARIABLES)}, and each of alerts has a "
                "notification's variables (rule, severity, state, labels, value, …) and its title.",
                code="invalid_template")
    return value


def _undeclared(env, text: str) -> set[str]:  # noqa: ANN001
    try:
        from monitors_dsl.templates import _undeclared_variables
    except ImportError:  # a language version without it: Jinja's own (its optimizer folds constants)
        from jinja2.meta import find_undeclared_variables as _undeclared_variables
    return set(_undeclared_variables(env.parse(text)))


def _window_parser():  # noqa: ANN202
    """The language's ``parse_window`` (None in a version of the language without time windows)."""
    import monitors_dsl

    found = getattr(monitors_dsl, "parse_window", None)
    if found is None:
        try:
            from monitors_dsl.windows import parse_window as found
        except ImportError:
            return None
    return found


def _where(error: ValueError) -> str:
    """The first problem of a window's text, at its column (the text is one line)."""
    diagnostics = [d for d in getattr(error, "diagnostics", []) if d.severity == "error"]
    if not diagnostics:
        return str(error)
    first = diagnostics[0]
    hint = f" ({first.hint})" if first.hint else ""
    return f"at column {first.column}: {first.message}{hint}"
