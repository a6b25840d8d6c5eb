"""The worker writes the bytecode of workflow modules, which the sandbox re-imports for every run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from engine.runtime.worker import ensure_bytecode

SOURCE = """from temporalio import workflow


@workflow.defn(name="sample.Nothing")
class Nothing:
    @workflow.run
    async def run(self) -> None:
        return None
"""


def test_missing_bytecode_of_a_workflow_module_is_written(tmp_path: Path) -> None:
    source = tmp_path / "bytecode_sample_workflows.py"
    source.write_text(SOURCE)
    was = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # as under PYTHONDONTWRITEBYTECODE: importing writes nothing
    try:
        spec = importlib.util.spec_from_file_location("bytecode_sample_workflows", source)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        cached = Path(importlib.util.cache_from_source(str(source)))
        assert not cached.exists()
        ensure_bytecode([module.Nothing])
        assert cached.exists()
    finally:
        sys.dont_write_bytecode = was
        sys.modules.pop("bytecode_sample_workflows", None)
