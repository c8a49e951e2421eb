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

__all__ = ["DEFAULT_TITLE", "DEFAULT_MESSAGE", "DEFAULT_GROUP_TITLE", "DEFAULT_GROUP_MESSAGE", "GROUP_LISTED"]

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


#: how many titles of each state (firing, resolved) a group's default message lists; it counts the rest
GROUP_LISTED = 60

# A grouped channel's message (one for several notifications). Variables: ``alerts`` (each notification's
# variables, as above, plus its rendered ``title``), ``firing`` and ``resolved`` (the alerts of that state),
# ``group`` (the group's values of the channel's ``group_by`` labels) and ``severity`` (the highest firing
# severity, or None when all are resolved). Firing and resolved notifications may share a message: they
# are listed under their own headings.
#
#     [CRITICAL] 3 alerts (rule=web_cpu_high): 2 firing, 1 resolved
#
#     Firing (2):
#       [CRITICAL] web_cpu_high is firing (host=web-01)
#       [WARNING] web_cpu_high is firing (host=web-02)
#     Resolved (1):
#       [RESOLVED] web_cpu_high is resolved (host=web-03)

_GROUP = "{{ group | dictsort | map('join', '=') | join(', ') }}"

DEFAULT_GROUP_TITLE = (
    "[{{ severity | upper if severity else 'RESOLVED' }}] {{ alerts | length }} alert"
    "{{ '' if alerts | length == 1 else 's' }}"
    "{% if group %} (" + _GROUP + "){% endif %}: "
    "{% if firing %}{{ firing | length }} firing{% endif %}"
    "{% if firing and resolved %}, {% endif %}"
    "{% if resolved %}{{ resolved | length }} resolved{% endif %}"
)

DEFAULT_GROUP_MESSAGE = """{% for heading, listed in [('Firing', firing), ('Resolved', resolved)] if listed %}{{ heading }} ({{ listed | length }}):
{% for alert in listed[:LISTED] %}  {{ alert.title }}
{% endfor %}{% if listed | length > LISTED %}  and {{ listed | length - LISTED }} more
{% endif %}{% endfor %}""".replace("LISTED", str(GROUP_LISTED))
