"""The engine's own messages (not a scenario's): notices to an organization's admin, the help reply.

Templates live in ``templates/`` like a plugin's and are named ``engine:<name>``; they are rendered in
the engine's Feishu activity that sends them, in the organization's locale.
"""

from __future__ import annotations

from pathlib import Path

SCENARIO = "engine"
TEMPLATES = Path(__file__).resolve().parent / "templates"
