"""The engine's Prometheus metrics, in a registry of their own (``/metrics`` serves it).

Counters and the histogram are fed by the live loop (:meth:`EngineMetrics.observe_tick`,
:meth:`EngineMetrics.observe_dispatch`); the lease gauges and counters are read
from the :class:`engine.leases.LeasedRules` at scrape time. Every name is
documented in ``docs/engine.md`` ("Health and metrics").
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["EngineMetrics", "CONTENT_TYPE"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_PREFIX = "monitors_engine_"
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class _LeaseCollector:
    """Reads a ``LeasedRules`` (and the rule set it wraps) when scraped."""

    def __init__(self, leases) -> None:
        self.leases = leases

    def collect(self):
        leases = self.leases
        yield GaugeMetricFamily(_PREFIX + "rules_held", "Rules whose lease this replica holds.",
                                value=len(leases.held))
        yield GaugeMetricFamily(_PREFIX + "rules_total", "Enabled rules in the store (lease rows) at the last "
                                "renewal.", value=leases.total)
        yield GaugeMetricFamily(_PREFIX + "replicas", "Live engine replicas (unexpired heartbeats) at the last "
                                "renewal, this one included.", value=leases.replicas)
        yield CounterMetricFamily(_PREFIX + "lease_takeovers", "Leases taken over from another replica after "
                                  "they expired.", value=leases.takeovers)
        yield CounterMetricFamily(_PREFIX + "leases_released", "Leases given up above the fair share.",
                                  value=leases.released)
        yield CounterMetricFamily(_PREFIX + "results_unheld", "Evaluation results not recorded because the "
                                  "rule's lease was about to run out.", value=leases.discarded)
        failed = getattr(leases.rules, "builder", None)
        if failed is not None:
            yield GaugeMetricFamily(_PREFIX + "rules_not_compiling", "Enabled rules that do not compile and are "
                                    "skipped.", value=len(failed.failed))


class EngineMetrics:
    """The metrics of one engine process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.evaluations = Counter(_PREFIX + "evaluations", "Rule evaluations, by result (ok or error).",
                                   ["result"], registry=r)
        self.evaluation_duration = Histogram(_PREFIX + "evaluation_duration_seconds", "Duration of one tick: "
                                             "queries, decisions and recording of the rules due.",
                                             buckets=_DURATION_BUCKETS, registry=r)
        self.queries = Counter(_PREFIX + "queries", "Queries issued to the time-series source.", registry=r)
        self.scans = Counter(_PREFIX + "scans", "Distinct scans answered by those queries (scans that differ only "
                             "in one tag's value share one query).", registry=r)
        self.ticks = Counter(_PREFIX + "ticks", "Ticks that evaluated at least one rule.", registry=r)
        self.state_changes = Counter(_PREFIX + "state_changes", "Series state transitions recorded.", registry=r)
        self.notifications_queued = Counter(_PREFIX + "notifications_queued", "Notification outbox rows written.",
                                            registry=r)
        self.notifications_sent = Counter(_PREFIX + "notifications_sent", "Notifications delivered.", registry=r)
        self.notifications_failed = Counter(_PREFIX + "notifications_failed", "Notifications given up (past the "
                                            "delivery deadline, or undeliverable).", registry=r)
        self.notifications_retried = Counter(_PREFIX + "notifications_retried", "Delivery attempts that failed "
                                             "and were scheduled again.", registry=r)
        self.outbox_depth = Gauge(_PREFIX + "outbox_depth", "Notifications waiting to be sent (pending or being "
                                  "sent).", registry=r)
        self.tick_lag = Gauge(_PREFIX + "tick_lag_seconds", "How late the last tick started after its due time "
                              "(and the evaluation delay).", registry=r)
        self.rule_load_failures = Counter(_PREFIX + "rule_load_failures", "Times the rules or leases could not be "
                                          "read or renewed (the store was away).", registry=r)

    def bind_leases(self, leases) -> None:
        """Expose a ``LeasedRules``' gauges and counters."""
        self.registry.register(_LeaseCollector(leases))

    def observe_tick(self, report) -> None:
        """Count one ``engine.runner.TickReport``."""
        if not report.rules:
            return
        errors = len(report.errors)
        self.ticks.inc()
        self.evaluations.labels("ok").inc(max(0, report.rules - errors - report.unheld))
        if errors:
            self.evaluations.labels("error").inc(errors)
        self.evaluation_duration.observe(report.seconds)
        self.queries.inc(report.queries)
        self.scans.inc(getattr(report, "scans", report.queries))
        self.state_changes.inc(report.transitions)
        self.notifications_queued.inc(report.outbox_rows)
        self.tick_lag.set(report.lag)

    def observe_dispatch(self, report) -> None:
        """Count one ``engine.notify.dispatch.DispatchReport``."""
        self.notifications_sent.inc(report.sent)
        self.notifications_failed.inc(report.failed)
        self.notifications_retried.inc(report.retried)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
