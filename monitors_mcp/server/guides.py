"""Resources (the language reference and examples from ``docs/``) and the ``write_alert_rule`` prompt.

The documents are read from the package (``monitors_mcp/_docs``, put there when the
wheel is built) or, in a source checkout, from the repository's ``docs/`` folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

__all__ = ["read_doc", "register_guides"]

DOCS = {
    "language": ("language.md", "The monitors rule language: syntax, functions, clauses, semantics"),
    "examples": ("examples.md", "Examples: what a person says, and the rule that does it"),
}

PROMPT = """Turn this request into a monitors alert rule and store it:

{request}

How to do it well:
1. Look the names up before writing anything: call describe_data for the measurements, then
   describe_data(measurement=...) for its fields, tags and their most frequent values. Use those
   exact names and values (a guessed name validates and then never fires, or fires at once with
   count(...) == 0 and absent(...)). If the person says the data is not written yet, pass
   data_arrives_later=true.
2. If you are not sure of the syntax, read the resources monitors://docs/language and
   monitors://docs/examples.
3. Pick the series (measurement.field{{tag="value"}}), the aggregate over a window
   (last, avg, max, min, sum, count, pct_change, rate, absent …) and the threshold. Percent
   changes are fractions: write 5% (not 5). Durations have no space: 5m, 1h. Examples:
   - "Bitcoin above $70k"         -> last(crypto.price{{symbol="BTC"}}) > 70000
   - "ETH drops 5% within an hour" -> pct_change(crypto.price{{symbol="ETH"}}, 1h) < -5%
   - "CPU above 90% for 10 minutes on any web host" ->
       rule web_cpu_high {{ when avg(cpu.usage_user{{host=~"^web-"}}, 5m) > 90  group by host  for 10m }}
   - "the API heartbeat stopped"  -> absent(heartbeat.up{{service="api"}}, 5m)
   - "checkout's 99.9% availability objective burns too fast" (an SLO: bad and total without a window) ->
       slo checkout_slo {{ bad sum(http.errors{{service="checkout"}})  total sum(http.requests{{service="checkout"}})
                           objective 99.9% }}
   Call validate_alert_rule and fix every diagnostic (each has a line, column and hint);
   warnings name the closest known measurement, field, tag value or channel: use them. To check
   the threshold is sensible, call preview_alert_rule with since="7d": it shows when the rule
   would have fired and what it would have sent.
   Then write two tests after the rule in the same text, one where it fires and one where it
   stays quiet (values: 5x3 is 5 four times, 1+2x2 is 1 3 5, _ no point); validate_alert_rule
   runs them and create_alert_rule refuses the rule while one fails:
       test crosses {{
           series crypto.price{{symbol="BTC"}} every 1m: 69000 70100x3
           expect firing at 1m
       }}
4. Choose a short snake_case name. If the person wants to be told somewhere, check
   list_notification_channels; add a channel with add_notification_channel when needed and
   name it in a notify clause (without one, alerts are recorded and nobody is told).
5. Tell the person, in one sentence, what the rule will do; then call create_alert_rule.
"""


def _doc_path_in_checkout(filename: str) -> Path:
    return Path(__file__).resolve().parents[2] / "docs" / filename


def read_doc(key: str) -> str:
    """The text of a shipped document; ``ResourceError`` if this install lacks it."""
    filename, _ = DOCS[key]
    packaged = resources.files("monitors_mcp").joinpath("_docs", filename)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    in_checkout = _doc_path_in_checkout(filename)
    if in_checkout.is_file():
        return in_checkout.read_text(encoding="utf-8")
    raise ResourceError(f"{filename} is not included in this installation")


def register_guides(mcp: MCPServer) -> None:
    def make_reader(key: str):  # noqa: ANN202 - one closure per document
        def read() -> str:
            return read_doc(key)

        return read

    for key, (filename, description) in DOCS.items():
        mcp.resource(
            f"monitors://docs/{key}",
            name=key,
            title=filename,
            description=description,
            mime_type="text/markdown",
        )(make_reader(key))

    @mcp.prompt(
        title="Write an alert rule",
        description="Guide for turning a person's words (e.g. 'tell me if BTC goes above 70k') into a stored rule",
    )
    def write_alert_rule(request: str) -> str:
        return PROMPT.format(request=request.strip()[:4000])
