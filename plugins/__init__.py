"""Scenario plugins shipped with the engine, registered through the ``engine.plugins`` entry points."""
