"""The rule clauses the state machine needs, in plain seconds.

:class:`Clauses` is independent of the syntax tree so that the state machine
can be driven by tests and backtests directly; :meth:`Clauses.from_rule` reads
a ``monitors_dsl.ast.Rule``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import SEVERITY_RANK

__all__ = ["NO_DATA_ACTIONS", "FlapDetection", "SUGGESTED_FLAP_DETECTION", "Clauses"]

NO_DATA_ACTIONS = ("ok", "alert", "keep")


@dataclass(frozen=True)
class FlapDetection:
    """A series is *flapping* when it changes more than ``high`` times within
    ``window`` seconds; it stops flapping once the changes within the window
    are down to ``low`` or fewer. Changes counted: starting to fire, resolving,
    and severity changes while firing (the changes that are notified).
    While flapping, notifications are held; when it stops, one notification
    brings the receivers up to date (see ``docs/notifications.md``).
    """

    window: int
    high: int
    low: int

    def __post_init__(self) -> None:
        if self.window <= 0:
            raise ValueError("flap detection window must be positive")
        if not 0 <= self.low < self.high:
            raise ValueError("flap detection needs 0 <= low < high")


#: A sensible setting for engines that turn flap detection on: more than six
#: changes within an hour is flapping; three or fewer ends it.
SUGGESTED_FLAP_DETECTION = FlapDetection(window=3600, high=6, low=3)


@dataclass(frozen=True)
class Clauses:
    """``for``, ``keep firing for``, ``resolve when``, ``on no data``, ``repeat every``.

    Durations are whole seconds. ``no_data_severity`` is the severity that
    ``on no data alert`` fires with. ``flap`` is ``None`` (the default) to
    turn flap detection off.
    """

    for_: int = 0
    keep_firing_for: int = 0
    has_resolve: bool = False
    on_no_data: str = "keep"
    no_data_severity: str = "warning"
    repeat_every: int | None = None
    flap: FlapDetection | None = None

    def __post_init__(self) -> None:
        if self.for_ < 0 or self.keep_firing_for < 0:
            raise ValueError("durations must not be negative")
        if self.repeat_every is not None and self.repeat_every <= 0:
            raise ValueError("repeat every must be positive")
        if self.on_no_data not in NO_DATA_ACTIONS:
            raise ValueError(f"on no data must be one of {', '.join(NO_DATA_ACTIONS)}")
        if self.no_data_severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {self.no_data_severity!r}")

    @classmethod
    def from_rule(cls, rule, flap: FlapDetection | None = None) -> Clauses:
        """The clauses of a ``monitors_dsl.ast.Rule``.

        ``on no data alert`` fires with the rule's ``severity`` when it has a
        plain ``when``, else with the highest severity it declares.
        """
        conditions = rule.conditions
        no_data_severity = conditions[0][0] if conditions else rule.severity
        return cls(
            for_=rule.for_.seconds,
            keep_firing_for=rule.keep_firing_for.seconds,
            has_resolve=rule.resolve_when is not None,
            on_no_data=rule.on_no_data,
            no_data_severity=no_data_severity,
            repeat_every=rule.repeat_every.seconds if rule.repeat_every is not None else None,
            flap=flap,
        )
