"""Architecture rules that cannot rot.

- The core never imports QGIS or PyQt; Processing never imports TensorFlow, directly or
  through the core.
- What Processing loads inside QGIS does not import GDAL's Python bindings or numpy
  either: importing ``osgeo`` there would switch GDAL/OGR/OSR exceptions on
  (``UseExceptions``) for the whole QGIS process, every other plugin included, and QGIS's
  numpy is not ours to pin. Processing imports from the core only ``errors``,
  ``progress`` and ``jobs``; importing each of those in a fresh interpreter loads none
  of numpy, osgeo, tensorflow, keras.
- Inside the core, role subpackages import one way::

      errors, progress, lazy  ←  jobs  ←  io  ←  data  ←  models  ←  training, serving, assessment  ←  tools, compat

  with no import cycle, and no module over 700 lines. Siblings of layer 5 and above
  (``training``, ``serving``, ``assessment``; ``tools``, ``compat``) never import each other.

The static analysis follows every import (module level and inside functions), the
parent packages of every module imported (an ``__init__`` runs before its modules), and
relative imports (which ruff's TID252 bans anyway). Each command has its config module
``jobs/configs/<command>.py``, its job ``<role>/<command>.py`` and its Processing
algorithm ``processing/<command>.py``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "otbtf_qgis"
QGIS_MODULES = {"qgis", "PyQt5", "PyQt6", "sip", "processing"}
TF_MODULES = {"tensorflow", "keras", "tf_keras"}
HEAVY_MODULES = {"numpy", "osgeo", "dask", "distributed", *TF_MODULES}
#: Layer of each part of the core: a module may import from its own layer or a lower one.
LAYERS = {"errors": 0, "progress": 0, "lazy": 0, "jobs": 1, "io": 2, "data": 3, "models": 4, "training": 5,
          "serving": 5, "assessment": 5, "tools": 6, "compat": 6}
#: Entry points at the root of the core (they may import anything; the fresh-import test keeps them cheap).
CORE_ENTRY_POINTS = {"__init__", "__main__", "otbtf_compat"}
#: What Processing may import from the core.
PROCESSING_MAY_IMPORT = ("otbtf_qgis.core.errors", "otbtf_qgis.core.progress", "otbtf_qgis.core.jobs")
MAX_LINES = 700


class ImportGraph:
    """The modules of a package tree and what each imports, resolved to module names."""

    def __init__(self, root: Path, package: str) -> None:
        self.root = root  # the folder holding the package folder
        self.package = package
        self.files = {self.module_name(p): p for p in (root / package).rglob("*.py")}

    def module_name(self, path: Path) -> str:
        parts = list(path.relative_to(self.root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)

    def is_package(self, module: str) -> bool:
        return self.files[module].name == "__init__.py"

    def imports(self, module: str, top_level_only: bool = False) -> set[str]:
        """Modules imported by ``module`` (resolved relative imports, ``from X import submodule`` included)."""
        path = self.files[module]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        if top_level_only:
            nodes = [n for stmt in tree.body if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                     for n in _walk_outside_functions(stmt)]
        else:
            nodes = list(ast.walk(tree))
        base = module if self.is_package(module) else module.rpartition(".")[0]
        names: set[str] = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    target = ".".join([*anchor, node.module] if node.module else anchor)
                else:
                    target = node.module or ""
                names.add(target)
                names.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in self.files)
        return names

    def with_parents(self, names: Iterable[str]) -> set[str]:
        """The names and every parent package of each (importing ``a.b.c`` runs ``a`` and ``a.b``)."""
        result = set()
        for name in names:
            parts = name.split(".")
            result.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
        return result

    def loaded_by(self, module: str) -> set[str]:
        """Every module that importing ``module`` may load: its imports at import time, transitively.

        Function-level imports of ``module`` itself count (they run when it is used);
        the modules it reaches are followed through their module-level imports.
        """
        seen: set[str] = set()
        result: set[str] = set()
        stack = [(name, False) for name in self.with_parents([module])]
        while stack:
            current, top_only = stack.pop()
            if (current, top_only) in seen:
                continue
            seen.add((current, top_only))
            for name in self.with_parents(self.imports(current, top_level_only=top_only)):
                result.add(name)
                if name in self.files:
                    stack.append((name, True))
        return result


def _walk_outside_functions(node: ast.AST) -> Iterable[ast.AST]:
    """``node`` and its descendants, not entering function bodies (class bodies run at import)."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk_outside_functions(child)


def roots(names: Iterable[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


GRAPH = ImportGraph(ROOT, "otbtf_qgis")
CORE = sorted(m for m in GRAPH.files if m.startswith("otbtf_qgis.core"))
FRONT = sorted(m for m in GRAPH.files if not m.startswith("otbtf_qgis.core"))


def layer_of(module: str) -> int | None:
    """The layer of a core module (``None`` for the root entry points)."""
    parts = module.split(".")
    if len(parts) == 2 or (len(parts) == 3 and parts[2] in CORE_ENTRY_POINTS):
        return None
    return LAYERS[parts[2]]


@pytest.mark.parametrize("module", CORE)
def test_core_never_imports_qgis(module: str) -> None:
    bad = roots(GRAPH.imports(module)) & QGIS_MODULES
    assert not bad, f"{module} imports {bad}: otbtf_qgis.core must stay QGIS-free"


@pytest.mark.parametrize("module", FRONT)
def test_processing_never_imports_tensorflow_gdal_or_numpy(module: str) -> None:
    loaded = GRAPH.loaded_by(module)
    bad = roots(loaded) & HEAVY_MODULES
    assert not bad, (f"{module} loads {bad} (directly or through the core): TensorFlow runs in the worker only, and "
                     "inside QGIS importing osgeo changes GDAL's error mode for every plugin")


@pytest.mark.parametrize("module", FRONT)
def test_processing_imports_only_jobs_errors_and_progress_from_the_core(module: str) -> None:
    core = {name for name in GRAPH.imports(module) if name.startswith("otbtf_qgis.core.")}
    bad = sorted(n for n in core if not n.startswith(PROCESSING_MAY_IMPORT))
    assert not bad, f"{module} imports {bad}: Processing may use only {', '.join(PROCESSING_MAY_IMPORT)}"


@pytest.mark.parametrize("module", [m for m in CORE if layer_of(m) is not None])
def test_core_imports_go_one_way(module: str) -> None:
    own = layer_of(module)
    part = module.split(".")[2]
    wrong = []
    for name in GRAPH.imports(module):
        if not name.startswith("otbtf_qgis.core.") or name not in GRAPH.files:
            continue
        target_part = name.split(".")[2]
        target = layer_of(name)
        if target is None:
            wrong.append(f"{name} (an entry point)")
        elif target > own or (target == own and target_part != part and own >= LAYERS["training"]):
            wrong.append(name)
    assert not wrong, f"{module} ({part}, layer {own}) imports {wrong}, which are above it or beside it"


def test_no_import_cycle() -> None:
    edges = {m: {n for n in GRAPH.with_parents(GRAPH.imports(m)) if n in GRAPH.files and n != m} for m in CORE}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in CORE:
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("module", CORE)
def test_core_modules_stay_small(module: str) -> None:
    lines = len(GRAPH.files[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines: split it by job (at most {MAX_LINES})"


@pytest.mark.parametrize("module", [m for m in CORE if GRAPH.is_package(m)])
def test_subpackages_say_what_lives_there(module: str) -> None:
    tree = ast.parse(GRAPH.files[module].read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{module}/__init__.py needs a docstring saying what lives there"


def test_commands_share_one_name_across_layers() -> None:
    from otbtf_qgis.core.jobs.commands import COMMANDS

    for name, spec in COMMANDS.items():
        config_module = spec.config.partition(":")[0]
        run_module = spec.run.partition(":")[0]
        assert config_module == f"otbtf_qgis.core.jobs.configs.{name}", (name, config_module)
        assert run_module.rsplit(".", 1)[-1] == name, (name, run_module)
        assert run_module in GRAPH.files and config_module in GRAPH.files
        if name != "diagnostics":  # a test tool, not an algorithm
            assert f"otbtf_qgis.processing.{name}" in GRAPH.files, f"no processing/{name}.py for the {name} command"


PROBE = ("import importlib, json, sys; importlib.import_module(sys.argv[1]); "
         "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")


def fresh_imports(modules: Iterable[str]) -> dict[str, list[str]]:
    """Import each module alone in a fresh interpreter; return the heavy modules each one loaded."""
    result = {}
    for module in modules:
        done = subprocess.run([sys.executable, "-c", PROBE, module], capture_output=True, text=True, cwd=ROOT,
                              check=True)
        result[module] = sorted(set(json.loads(done.stdout)) & HEAVY_MODULES)
    return result


def test_what_processing_imports_is_light_in_a_fresh_interpreter() -> None:
    light = ["otbtf_qgis", "otbtf_qgis.core", *(m for m in CORE if m.startswith(PROCESSING_MAY_IMPORT))]
    heavy = {module: loaded for module, loaded in fresh_imports(light).items() if loaded}
    assert not heavy, f"importing these loads heavy modules: {heavy}"


def test_the_fresh_import_check_sees_heavy_modules() -> None:
    assert fresh_imports(["otbtf_qgis.core.io.raster"])["otbtf_qgis.core.io.raster"] == ["numpy", "osgeo"]


def test_rules_see_parent_packages_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("import numpy\n")
    (package / "sub" / "light.py").write_text("X = 1\n")
    (package / "sub" / "rel.py").write_text("from . import light\nfrom ..other import thing\n")
    (package / "other.py").write_text("def f():\n    import tensorflow\n\nimport json\n")
    (package / "user.py").write_text("from pkg.sub.light import X\n")
    graph = ImportGraph(tmp_path, "pkg")
    assert "numpy" in graph.loaded_by("pkg.user")  # through the parent package pkg.sub
    assert graph.imports("pkg.sub.rel") >= {"pkg.sub", "pkg.sub.light", "pkg.other"}
    assert "tensorflow" in graph.imports("pkg.other")  # inside a function
    assert "tensorflow" not in graph.imports("pkg.other", top_level_only=True)
    assert "tensorflow" in graph.loaded_by("pkg.other")  # its own function-level imports count
