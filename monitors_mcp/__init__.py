"""monitors-mcp: alert rules, alerts and notification channels in a SQL store, served to Claude over MCP.

Packages: ``store`` (models, migrations, encryption — importable without the MCP
SDK), ``service`` (who may do what), ``server`` (the MCP tools, resources and
prompt), ``auth`` (bearer tokens over HTTP) and ``cli`` (the ``monitors-mcp`` command).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
