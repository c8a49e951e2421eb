"""Checks ``title``/``message`` templates: Jinja2 syntax in a sandbox, known variables only.

Rendering belongs to the engine's notifier; this module only says whether a
template will compile and names every variable it may use.
"""

from __future__ import annotations

import functools

__all__ = ["TEMPLATE_VARIABLES", "template_problems", "sandbox"]

TEMPLATE_VARIABLES = {
    "rule": "the rule's name",
    "severity": "critical, warning or info",
    "state": "firing or resolved",
    "value": "value of the first aggregate in the firing condition (at resolution: its value then)",
    "values": "canonical aggregate text → value",
    "labels": "group tags plus the `labels` clause",
    "started_at": "when the alert started firing (RFC 3339)",
    "evaluated_at": "the evaluation time (RFC 3339)",
    "condition": "the firing condition's canonical text",
    "description": "the rule's `description`, or an empty string",
}


@functools.cache
def sandbox():
    """The sandboxed Jinja2 environment shared by checking and rendering."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def template_problems(template: str) -> list[tuple[str, int, str, str | None]]:
    """``(code, line within the template, message, hint)`` for each problem found."""
    from jinja2 import TemplateSyntaxError, meta
    from jinja2.exceptions import TemplateAssertionError

    env = sandbox()
    try:
        tree = env.parse(template)
    except TemplateSyntaxError as error:
        return [("template-syntax", error.lineno or 1, f"template error: {error.message}",
                 "templates use Jinja2: {{ value }}, {% if … %}…{% endif %}")]
    problems = []
    known = set(TEMPLATE_VARIABLES) | set(env.globals)
    from .errors import did_you_mean

    try:
        for name in sorted(meta.find_undeclared_variables(tree)):
            if name not in known:
                hint = did_you_mean(name, TEMPLATE_VARIABLES)
                problems.append(("unknown-template-variable", 1, f"unknown template variable `{name}`",
                                 (hint + " " if hint else "") + "variables: " + ", ".join(TEMPLATE_VARIABLES)))
        env.compile(tree)
    except TemplateAssertionError as error:
        problems.append(("template-syntax", error.lineno or 1, f"template error: {error.message}",
                         "see the filters Jinja2 offers: round, default, upper, lower, replace, format …"))
    except TemplateSyntaxError as error:
        problems.append(("template-syntax", error.lineno or 1, f"template error: {error.message}", None))
    return problems
