"""``monitors-engine``: run the engine against the store and a time-series source.

    monitors-engine run [--config FILE] [--data DIR]          the live loop, until SIGTERM / Ctrl-C
    monitors-engine run --once [--at T] [--config FILE] …     evaluate every enabled rule once at T
                                                              (default: now), dispatch the outbox, exit

The live loop ticks at each second where a rule is due (multiples of its
``every``, after the evaluation delay), reloads rules from the store before
each tick, and dispatches the notification outbox between ticks. SIGTERM or
SIGINT lets the current tick finish, then the command releases this
replica's leases, stops the health server and exits 0.

Replicas share the rules through leases in the store (``engine.leases``); on
SQLite one engine holds them all and a second one exits 1 saying so. The live
loop serves ``/healthz``, ``/readyz`` and ``/metrics`` (``engine.http``) on
``http_host:http_port`` (``MONITORS_ENGINE_HTTP_HOST``/``_PORT``, default
127.0.0.1:9464; 0 turns it off). Logs are JSON lines unless stderr is a
terminal (``--log-format``).

Configuration: see ``engine.config`` (a TOML/JSON file, then the environment:
``MONITORS_DATABASE_URL``, ``MONITORS_ENGINE_DATA_DIR``, ``INFLUXDB3_HOST``,
``INFLUXDB3_DATABASE``, ``INFLUXDB3_AUTH_TOKEN``, ``MONITORS_SECRET_KEY``).
Every failure ends as one line on stderr (exit 1; 2 for a usage or
configuration error), never a traceback.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import time
from datetime import datetime, timezone
from typing import Sequence

__all__ = ["main"]

log = logging.getLogger("engine")

_INSTALL = 'install them with: pip install "monitors-mcp[engine]"'


class UsageError(Exception):
    """A wrong argument or setting (exit 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitors-engine", description="Evaluate alert rules and send notifications.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the engine", description="Run the engine (see docs/engine.md).")
    run.add_argument("--config", metavar="FILE", help="settings file (TOML, or JSON by its .json extension)")
    run.add_argument("--data", metavar="DIR", help="use the embedded source over this data directory")
    run.add_argument("--database-url", metavar="URL", help="the store (default: $MONITORS_DATABASE_URL, else SQLite)")
    run.add_argument("--once", action="store_true", help="evaluate every enabled rule once, dispatch, and exit")
    run.add_argument("--at", metavar="T", help="with --once: the evaluation time, RFC 3339 (default: now)")
    run.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    run.add_argument("--log-format", choices=("json", "text"),
                     help="log lines as JSON or text (default: $MONITORS_ENGINE_LOG_FORMAT, log_format, "
                          "else json unless stderr is a terminal)")
    return parser


def _parse_at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    from .sources import parse_rfc3339

    try:
        ns = parse_rfc3339(text)
    except ValueError as error:
        raise UsageError(f"--at: {error}") from None
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=rest // 1000)


class Engine:
    """The assembled parts: store, source, rules, runner and dispatcher."""

    def __init__(self, config, *, once: bool = False) -> None:
        from monitors_mcp.store import Database
        from monitors_mcp.store.secrets import load_secret_box

        from .notify.dispatch import Dispatcher
        from .evaluate import Evaluator
        from .leases import LeasedRules, default_replica_id
        from .metrics import EngineMetrics
        from .repository import SqlRepository
        from .rules import RuleBuilder, StoreRules
        from .runner import Runner
        from .state import SUGGESTED_FLAP_DETECTION

        self.config = config
        self.replica = config.replica or default_replica_id()
        self.db = Database(config.database_url)
        self.db.migrate()
        self.secrets = load_secret_box()
        self.source = config.open_source()
        flap = SUGGESTED_FLAP_DETECTION if config.flap_detection else None
        self.rules = StoreRules(self.db, RuleBuilder(flap))
        # --once takes every rule, so it refuses to run beside live replicas
        self.leases = LeasedRules(self.rules, self.db, self.replica, lease_duration=config.lease_duration,
                                  exclusive=True if once or self.db.dialect == "sqlite" else None)
        self.metrics = EngineMetrics()
        self.metrics.bind_leases(self.leases)
        self.http = None
        self.readiness = None
        self._depth_at = 0.0
        self.runner = Runner(self.leases, SqlRepository(self.db),
                             Evaluator(self.source, max_in_flight=config.max_queries_in_flight,
                                       query_timeout=config.query_timeout),
                             evaluation_delay=config.evaluation_delay, values_every=config.values_every)
        self.dispatcher = Dispatcher(self.db, self.secrets, batch=config.dispatch_batch,
                                     attempt_timeout=config.attempt_timeout, deadline=config.delivery_deadline,
                                     first_backoff=config.first_backoff, max_backoff=config.max_backoff,
                                     replica=self.replica)

    def once(self, at: datetime) -> int:
        self.leases.acquire()
        try:
            report = self.runner.tick(at, all_rules=True)
        finally:
            self.leases.release()
        for rule_id, error in sorted(report.errors.items()):
            print(f"rule {rule_id}: {error}", file=sys.stderr)
        sent = failed = retried = 0
        while True:  # everything due now, batch after batch
            result = self.dispatcher.dispatch()
            sent, failed, retried = sent + result.sent, failed + result.failed, retried + result.retried
            if result.attempted < self.dispatcher.batch:
                break
        print(f"evaluated {report.rules} rules at {at.isoformat().replace('+00:00', 'Z')} with {report.queries} "
              f"queries: {report.transitions} state changes, {report.notifications} notifications; "
              f"sent {sent}, retrying {retried}, failed {failed}; {len(report.errors)} rules in error")
        return 0

    def run(self) -> int:
        def stop(signum, _frame):
            log.info("signal %s: stopping after the current tick", signum)
            if self.readiness is not None:
                self.readiness.stopping = True
            self.runner.stop()

        self.leases.acquire()
        try:
            self._serve()
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            log.info("engine running (source: %s, replica %s, %d of %d rules held)", self.source.name,
                     self.replica, len(self.leases.held), self.leases.total)
            self.runner.run(between_ticks=self._between_ticks, on_tick=self._on_tick)
            self._dispatch()
        finally:
            self._shutdown()
        log.info("engine stopped")
        return 0

    def _serve(self) -> None:
        from .http import HealthServer, Readiness

        def store() -> None:
            from sqlalchemy import text

            with self.db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))

        self.readiness = Readiness(store=store, source=self.source.ping, leases=self.leases,
                                   timeout=min(self.config.query_timeout, 10.0),
                                   interval=min(5.0, max(0.5, self.config.lease_duration / 6)))
        if self.config.http_port:
            self.http = HealthServer(self.config.http_host, self.config.http_port, readiness=self.readiness,
                                     metrics=self.metrics)
            self.http.start()
        self.readiness.start()

    def _shutdown(self) -> None:
        try:
            self.leases.release()
        except Exception as error:  # the store is away: the leases run out by themselves
            log.warning("releasing leases failed: %s", _describe(error))
        if self.readiness is not None:
            self.readiness.stop()
        if self.http is not None:
            self.http.stop()

    def _dispatch(self):
        report = self.dispatcher.dispatch()
        self.metrics.observe_dispatch(report)
        return report

    def _between_ticks(self) -> None:
        if self.leases.last_error is not None:
            self.metrics.rule_load_failures.inc()
        self._dispatch()
        now = time.monotonic()
        if now - self._depth_at >= 5.0:
            self._depth_at = now
            self.metrics.outbox_depth.set(self._outbox_depth())

    def _outbox_depth(self) -> int:
        from sqlalchemy import func, select

        from monitors_mcp.store import NotificationOutbox

        with self.db.session() as session:
            return session.scalar(select(func.count()).select_from(NotificationOutbox)
                                  .where(NotificationOutbox.status.in_(("pending", "sending")))) or 0

    def _on_tick(self, report) -> None:
        self.metrics.observe_tick(report)
        if report.evaluation is not None and log.isEnabledFor(logging.DEBUG):
            ids = sorted(int(r.rule.id) for r in report.evaluation.results if r.rule.store_id is not None)
            log.debug("tick evaluated", extra={"event": "tick", "at": report.at.isoformat(), "rule_ids": ids,
                                               "unheld": report.unheld})

    def close(self) -> None:
        try:
            self.source.close()
        finally:
            self.db.dispose()


def _describe(error: BaseException) -> str:
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover
        SQLAlchemyError = ()  # noqa: N806
    if isinstance(error, SQLAlchemyError):
        reason = getattr(error, "orig", None)
        detail = reason.args[-1] if reason is not None and getattr(reason, "args", None) else type(error).__name__
        return f"database error: {detail}"
    if isinstance(error, OSError):
        return f"{error.strerror or error}" + (f": {error.filename}" if getattr(error, "filename", None) else "")
    text = " ".join(str(error).split())
    return text or type(error).__name__


def tune_garbage_collector() -> None:
    """Collect young objects less often: the engine holds hundreds of thousands of long-lived objects (its
    rules and series states), and with the default thresholds the full collections that walk all of them
    come every few ticks and cost a good part of a tick's CPU."""
    gc.set_threshold(50_000, 50, 100)


def _run(args) -> int:
    tune_garbage_collector()
    try:
        from .config import ConfigError, load_config
        from .sources import SourceError
    except ImportError as error:
        raise UsageError(f"the engine needs its packages ({error.name or error}); {_INSTALL}") from None
    if args.at is not None and not args.once:
        raise UsageError("--at goes with --once")
    at = _parse_at(args.at) if args.once else None
    try:
        config = load_config(args.config, data_dir=args.data, database_url=args.database_url)
        config.source_kind  # noqa: B018 - fails early when no source is configured
    except ConfigError as error:
        raise UsageError(str(error)) from None
    from .leases import LeaseConflict, default_replica_id
    from .logs import protect_secrets, setup_logging

    setup_logging(args.log_level, args.log_format or config.log_format, replica=config.replica or default_replica_id())
    protect_secrets(config.database_url, [config.influxdb3_token, os.environ.get("MONITORS_SECRET_KEY")])
    try:
        engine = Engine(config, once=args.once)
    except SourceError as error:
        raise UsageError(str(error)) from None
    try:
        return engine.once(at) if args.once else engine.run()
    except LeaseConflict as error:
        print(f"monitors-engine: {error}", file=sys.stderr)
        return 1
    finally:
        engine.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from .logs import setup_logging

        setup_logging(args.log_level, args.log_format)
    except ImportError:  # the engine's packages are missing: said below, in one line
        logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr)
    try:
        from .notify import protect_logs

        protect_logs()
    except ImportError:
        pass
    try:
        return _run(args)
    except UsageError as error:
        print(f"monitors-engine: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # every failure ends as one line, never a traceback
        print(f"monitors-engine: error: {_describe(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
