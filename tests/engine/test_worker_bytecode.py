"""The worker writes the bytecode of workflow modules, which the sandbox re-imports for every run."""

from __future__ import annotations

import importlib
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


def test_the_packages_above_a_workflow_module_get_their_bytecode_too(tmp_path: Path) -> None:
    package = tmp_path / "bytecode_sample_pkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""A plugin package the sandbox re-imports with its workflows."""\n')
    (package / "workflows.py").write_text(SOURCE)
    was = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("bytecode_sample_pkg.workflows")
        caches = [Path(importlib.util.cache_from_source(str(package / name))) for name in ("__init__.py",
                                                                                           "workflows.py")]
        assert not any(cached.exists() for cached in caches)
        ensure_bytecode([module.Nothing])
        assert all(cached.exists() for cached in caches)
    finally:
        sys.dont_write_bytecode = was
        sys.path.remove(str(tmp_path))
        for name in ("bytecode_sample_pkg.workflows", "bytecode_sample_pkg"):
            sys.modules.pop(name, None)
