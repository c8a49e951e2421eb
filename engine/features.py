"""The engine's features the MCP server offers, registered as the entry point ``monitors.engine`` → ``features``.

``monitors_mcp`` never imports the engine: it loads this object through the entry
point (``monitors_mcp.service.engine_link``) and uses only what is here:

    features.open_source()               → a SourceHandle on the configured source (``engine.config``:
                                            MONITORS_ENGINE_DATA_DIR, or INFLUXDB3_HOST + INFLUXDB3_DATABASE)
        .name                            what kind of source it is, without its host or path
        .schema()                        a ``monitors_dsl.Schema``
        .describe(measurement, limit)    plain data: fields, tags with their most frequent values, last write
        .schema_with_values(schema, {measurement: {tag, …}}, limit)
        .preview(rule_text, name, start, end, dependencies=[(name, text)], channels={name: window})
                                         → the rule's backtest: transitions, notifications (each with
                                            its outcome per channel: sent, or held with why),
                                            evaluations, errors, chart_png (PNG bytes or None);
                                            ``dependencies`` the rules its ``depends on`` names (run
                                            alongside, not reported), ``channels`` the channels'
                                            ``mute_during`` texts
        .close()
    features.run_tests(text)             → a ``monitors_dsl.testblocks.TestResult`` per ``test`` block of a rule
                                            document, run on its own series (``engine.testing``)
    features.simulate(db, secrets, tables, times, on_tick)
                                         → the engine over in-memory tables ({measurement: {column: [values]}},
                                            ``time`` a list of datetimes) at each of ``times``, on the store
                                            ``db``: rules read from it, alerts recorded, notifications sent;
                                            ``on_tick(at, errors, transitions, notifications)`` after each tick

Every failure is a ``FeatureError`` whose ``code`` (``engine_not_installed``,
``no_source``, ``source_unavailable``, ``source_failed``, ``invalid_rule``) and
``hint`` the server passes on as they are.
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["FeatureError", "SourceHandle", "features"]

INSTALL = 'pip install "monitors-mcp[engine]"'
SOURCE_SETTINGS = ("set MONITORS_ENGINE_DATA_DIR to a directory of <measurement>.csv / .parquet files (the embedded "
                   "source), or INFLUXDB3_HOST and INFLUXDB3_DATABASE (and INFLUXDB3_AUTH_TOKEN) for InfluxDB 3, in "
                   "the environment of the MCP server")


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class FeatureError(Exception):
    """A feature could not run: ``code`` says why in one stable word, ``hint`` what to do."""

    def __init__(self, code: str, message: str, hint: str):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


def _source_failed(error) -> FeatureError:
    kind = getattr(error, "kind", "query")
    code = "source_unavailable" if kind in ("unreachable", "unauthorized", "forbidden", "timeout", "config") \
        else "source_failed"
    hint = ("the source's operator should check the settings and that it is up; try again shortly"
            if code == "source_unavailable" else "check the names in the call; the source's message says more")
    return FeatureError(code, f"The time-series source failed: {error}", hint)


class SourceHandle:
    """The configured source, with every failure turned into a ``FeatureError``."""

    def __init__(self, source) -> None:
        from .sources import SourceError

        self._source = source
        self._errors = (SourceError,)
        database = getattr(source, "database", None)
        # what every caller may see: the kind of source, not its host or path
        self.name = f"InfluxDB 3, database {database}" if database else "the embedded source (data files)"

    def _run(self, action):
        try:
            return action()
        except self._errors as error:
            raise _source_failed(error) from None

    def schema(self):
        return self._run(self._source.schema)

    def describe(self, measurement: str, limit: int) -> dict:
        from .discovery import describe_measurement

        known = self.schema().measurements[measurement]
        facts = self._run(lambda: describe_measurement(self._source, measurement, known, limit))
        return {
            "name": facts.name,
            "fields": facts.fields,
            "tags": [{"name": t.name, "values": list(t.values), "more_values": t.more} for t in facts.tags],
            "last_written_at": facts.last_written_at,
        }

    def schema_with_values(self, schema, wanted: dict[str, set[str]], limit: int):
        from .discovery import schema_with_values

        return self._run(lambda: schema_with_values(schema, self._source, wanted, limit))

    def preview(self, rule_text: str, name: str | None, start: datetime, end: datetime, *,
                seconds: float | None = None, dependencies=(), channels=None):
        """The rule's backtest summary (as ``monitors backtest --format json``), its number of evaluations,
        up to ten ``"time: message"`` errors and a PNG chart (None without matplotlib).

        ``seconds``: the wall time it may take; past it the backtest stops and ``stopped_at``
        says how far it got (else None). ``dependencies``: ``(name, text)`` of the rules the rule's
        ``depends on`` names, run alongside so that its notifications are held as live (not reported).
        ``channels``: channel name → its ``mute_during`` text (or None)."""
        import time
        from .backtest import backtest
        from .rules import rule_from_text

        try:
            rule = rule_from_text(rule_text, name=name)
        except ValueError as error:
            raise FeatureError("invalid_rule", str(error), "validate the rule with validate_alert_rule") from None
        context = []
        for index, (other_name, other_text) in enumerate(dependencies, start=1):
            try:
                context.append(rule_from_text(other_text, id=f"dependency {index}", name=other_name))
            except ValueError:  # a stored rule that no longer compiles holds nothing, as in the engine
                continue
        try:
            deadline = None if seconds is None else time.monotonic() + seconds
            result = self._run(lambda: backtest([rule], self._source, start, end, deadline=deadline,
                                                context=context, channels=channels))
        except ValueError as error:
            raise FeatureError("invalid_input", str(error), "change since/until and call again") from None
        (summary,) = result.to_json()["rules"]
        errors = sorted({f"{_iso(at)}: {message}" for at, _, message in result.errors})[:10]
        try:
            from .chart import render_chart

            png = render_chart(result)
        except ImportError:  # no chart without matplotlib; the summary stands on its own
            png = None
        return {"transitions": summary["transitions"], "notifications": summary["notifications"],
                "evaluations": result.ticks, "errors": errors, "chart_png": png,
                "stopped_at": None if result.stopped_at is None else _iso(result.stopped_at)}

    def close(self) -> None:
        self._source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Features:
    def open_source(self, *, query_timeout: float | None = None) -> SourceHandle:
        try:
            from .config import ConfigError, load_config
            from .sources import SourceError
        except ImportError as error:
            raise FeatureError("engine_not_installed", f"This needs the engine's packages ({error.name} is "
                               "missing).", f"install them with: {INSTALL}") from None
        try:
            config = load_config(query_timeout=query_timeout)
            config.source_kind  # noqa: B018 - raises ConfigError when no source is set
        except ConfigError as error:
            raise FeatureError("no_source", f"No time-series source is configured: {error}.",
                               SOURCE_SETTINGS) from None
        try:
            return SourceHandle(config.open_source())
        except ImportError as error:
            raise FeatureError("engine_not_installed", f"This needs the engine's packages ({error.name} is "
                               "missing).", f"install them with: {INSTALL}") from None
        except SourceError as error:
            raise _source_failed(error) from None

    def run_tests(self, text: str, *, max_evaluations: int | None = None, seconds: float | None = None) -> list:
        """Every ``test`` block of ``text``, run (``engine.testing.run_tests``, within ``max_evaluations`` and
        ``seconds`` for all of them); ``invalid_rule`` when the text has errors."""
        try:
            from .testing import run_tests
        except ImportError as error:
            raise FeatureError("engine_not_installed", f"This needs the engine's packages ({error.name} is "
                               "missing).", f"install them with: {INSTALL}") from None
        import monitors_dsl

        try:
            return run_tests(text, max_evaluations=max_evaluations, seconds=seconds)
        except monitors_dsl.DslError as error:
            raise FeatureError("invalid_rule", str(error), "validate the rule with validate_alert_rule") from None

    def simulate(self, db, secrets, tables, times, on_tick=None, *, attempt_timeout: float = 10.0) -> None:
        try:
            import pyarrow as pa

            from .notify.dispatch import Dispatcher
            from .evaluate import Evaluator
            from .repository import SqlRepository
            from .rules import StoreRules
            from .runner import Runner
            from .sources import DataFusionSource
        except ImportError as error:
            raise FeatureError("engine_not_installed", f"This needs the engine's packages ({error.name} is "
                               "missing).", f"install them with: {INSTALL}") from None
        source = DataFusionSource()
        try:
            for measurement, columns in tables.items():
                source.add_table(measurement, pa.table(columns))
            runner = Runner(StoreRules(db), SqlRepository(db), Evaluator(source))
            dispatcher = Dispatcher(db, secrets, attempt_timeout=attempt_timeout)
            for moment in times:
                report = runner.tick(moment, all_rules=True)
                if report.transitions or report.outbox_rows:
                    dispatcher.dispatch()
                if on_tick is not None:
                    on_tick(moment, dict(report.errors), report.transitions, report.notifications)
        finally:
            source.close()


#: the object the entry point names
features = _Features()
