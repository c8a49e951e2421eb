"""The title and message used when a rule has no ``title``/``message`` clause.

    [CRITICAL] btc_above_70k is firing (symbol=BTC)

    btc_above_70k is firing at severity critical.
    Value: 70123.5
    Condition: last(crypto.price{symbol="BTC"}, 5m) > 70000
      last(crypto.price{symbol="BTC"}, 5m) = 70123.5
    Labels: symbol=BTC
    Started at: 2024-05-01T12:00:00Z
    Evaluated at: 2024-05-01T12:00:00Z
"""

from __future__ import annotations

__all__ = ["DEFAULT_TITLE", "DEFAULT_MESSAGE"]

_LABELS = "{{ labels | dictsort | map('join', '=') | join(', ') }}"

DEFAULT_TITLE = (
    "[{{ 'RESOLVED' if state == 'resolved' else severity | upper }}] {{ rule }}"
    "{% if kind == 'escalation' %} {{ 'escalated' if direction == 'up' else 'de-escalated' }}"
    " from {{ previous_severity }} to {{ severity }}"
    "{% elif kind == 'repeat' %} is still firing"
    "{% elif state == 'resolved' %} is resolved"
    "{% else %} is firing{% endif %}"
    "{% if labels %} (" + _LABELS + "){% endif %}"
)

DEFAULT_MESSAGE = """\
{{ rule }} {{ 'is resolved' if state == 'resolved' else 'is firing at severity ' ~ severity }}.
Value: {{ value }}
Condition: {{ condition }}
{% for term, term_value in values | dictsort %}  {{ term }} = {{ term_value }}
{% endfor %}{% if labels %}Labels: """ + _LABELS + """
{% endif %}Started at: {{ started_at }}
{% if state == 'resolved' %}Resolved at{% else %}Evaluated at{% endif %}: {{ evaluated_at }}
{% if description %}
{{ description }}
{% endif %}"""
