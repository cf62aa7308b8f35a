"""Architecture rules that cannot rot.

The core never imports QGIS; Processing never imports TensorFlow; and what Processing
loads inside QGIS does not import GDAL's Python bindings or numpy either: importing
``osgeo`` there would switch GDAL/OGR/OSR exceptions on (``UseExceptions``) for the whole
QGIS process, every other plugin included, and QGIS's numpy is not ours to pin.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "otbtf_qgis"
QGIS_MODULES = {"qgis", "PyQt5", "PyQt6", "sip", "processing"}
TF_MODULES = {"tensorflow", "keras", "tf_keras"}
NATIVE_MODULES = {"osgeo", "numpy"}


def imports_of(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # module level, including inside if/try at module level
        nodes = [n for stmt in tree.body for n in ast.walk(stmt)
                 if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != "otbtf_qgis":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def transitive_imports(path: Path) -> set[str]:
    """Every module imported by ``path``, following otbtf_qgis modules' module-level imports."""
    seen_files: set[Path] = set()
    result: set[str] = set()
    stack = [(path, False)]
    while stack:
        current, top_only = stack.pop()
        if current in seen_files:
            continue
        seen_files.add(current)
        for name in imports_of(current, top_level_only=top_only):
            result.add(name)
            target = module_file(name)
            if target is not None:
                stack.append((target, True))
    return result


def roots(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


CORE_FILES = sorted((PACKAGE / "core").rglob("*.py"))
FRONT_FILES = [*sorted((PACKAGE / "processing").rglob("*.py")), PACKAGE / "plugin.py", PACKAGE / "__init__.py"]


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_never_imports_qgis(path: Path) -> None:
    bad = roots(imports_of(path)) & QGIS_MODULES
    assert not bad, f"{path} imports {bad}: otbtf_qgis.core must stay QGIS-free"


@pytest.mark.parametrize("path", FRONT_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_processing_never_imports_tensorflow(path: Path) -> None:
    bad = roots(transitive_imports(path)) & TF_MODULES
    assert not bad, f"{path} imports {bad} (directly or through the core): TensorFlow runs in the worker only"


#: Core modules the Processing side relies on: they must stay on the standard library.
PROCESS_SIDE_CORE = ["client", "worker", "outputs", "datafiles", "config", "commands", "errors", "progress",
                     "environment"]
NATIVE_FREE_FILES = [*(PACKAGE / "core" / f"{name}.py" for name in PROCESS_SIDE_CORE), *FRONT_FILES]


@pytest.mark.parametrize("path", NATIVE_FREE_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_processing_side_never_imports_gdal_or_numpy(path: Path) -> None:
    bad = roots(transitive_imports(path)) & NATIVE_MODULES
    assert not bad, (f"{path} imports {bad} (directly or through the core): inside QGIS, importing osgeo "
                     "changes GDAL's error mode for every plugin; keep it in the worker")


CONFIG_FILES = sorted((PACKAGE / "core").glob("*_config.py"))
HEAVY_MODULES = {"numpy", "osgeo", *TF_MODULES}


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_job_configs_are_light(path: Path) -> None:
    """Processing builds the jobs' configs: importing them must not load numpy, GDAL or TensorFlow."""
    bad = roots(transitive_imports(path)) & HEAVY_MODULES
    assert not bad, f"{path} imports {bad} (directly or through the core): keep job configs light"


def test_processing_builds_configs_from_the_config_modules() -> None:
    for path in FRONT_FILES:
        jobs = {name for name in imports_of(path) if name.startswith("otbtf_qgis.core.")
                and name.rsplit(".", 1)[-1][:1].isupper() and name.rsplit(".", 1)[-1].endswith("Config")}
        assert all(name.rsplit(".", 1)[0].endswith(("_config", ".config")) for name in jobs), (path, jobs)


def test_rule_detects_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("def f():\n    import tensorflow as tf\n    from qgis.core import QgsApplication\n")
    assert roots(imports_of(sample)) & TF_MODULES == {"tensorflow"}
    assert roots(imports_of(sample)) & QGIS_MODULES == {"qgis"}
    assert roots(transitive_imports(PACKAGE / "core" / "raster.py")) & NATIVE_MODULES == NATIVE_MODULES
