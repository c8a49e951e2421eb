"""Flap detection: count recent changes, with hysteresis between ``high`` and ``low``."""

from __future__ import annotations

from datetime import datetime, timedelta

from .clauses import FlapDetection

__all__ = ["update_flapping"]


def update_flapping(config: FlapDetection | None, flapping: bool, changes: tuple[datetime, ...],
                    at: datetime, changed: bool) -> tuple[bool, tuple[datetime, ...]]:
    """The new ``(flapping, changes)`` after an evaluation at ``at``.

    Only the changes inside the window are kept, and at most ``high + 1`` of
    them: enough to tell both thresholds apart, and a bound on the stored size.
    """
    if config is None:
        return False, ()
    horizon = at - timedelta(seconds=config.window)
    recent = [t for t in changes if t > horizon]
    if changed:
        recent.append(at)
    recent = recent[-(config.high + 1):]
    if not flapping and len(recent) > config.high:
        flapping = True
    elif flapping and len(recent) <= config.low:
        flapping = False
    return flapping, tuple(recent)
