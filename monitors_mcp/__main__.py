"""``python -m monitors_mcp`` runs the ``monitors-mcp`` command."""

import sys

from .cli import main

sys.exit(main())
