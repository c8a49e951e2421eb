"""The words → rule pairs of docs/examples.md."""

from __future__ import annotations

import re
from pathlib import Path


EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples.md"


PAIRS = re.findall(r"^### \d+\. (.+?)\n\n```rule\n(.*?)\n```", EXAMPLES.read_text(encoding="utf-8"), re.S | re.M)
