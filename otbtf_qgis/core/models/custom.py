"""Load a user's model class from a Python file, so any ``ModelBase`` subclass can be trained.

The file is imported as a module of its own (its folder is importable meanwhile, for
helper modules beside it). Files written for OTBTF import ``otbtf`` (``ModelBase``,
``ops``, ``layers``, ``DatasetFromPatchesImages``, …) or its modules ``otbtf.model``,
``otbtf.ops``, …; when the real ``otbtf`` package is not installed, those names are
served by this package (:func:`install_otbtf_aliases`), so such files run unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
import types
from pathlib import Path
from typing import Any

from otbtf_qgis.core import OTBTF_NAMES
from otbtf_qgis.core.errors import ModelError
from otbtf_qgis.core.lazy import lazy_exports

#: OTBTF's modules (``otbtf.<name>``) and the modules here that serve them.
OTBTF_MODULES: dict[str, str] = {
    "model": "otbtf_qgis.core.models.base",
    "ops": "otbtf_qgis.core.models.ops",
    "layers": "otbtf_qgis.core.models.layers",
    "dataset": "otbtf_qgis.core.data.patches",
    "tfrecords": "otbtf_qgis.core.data.tfrecords",
}


def install_otbtf_aliases(package_folder: str | Path | None = None) -> bool:
    """Make ``import otbtf`` resolve to this package when OTBTF's own is not installed.

    ``otbtf`` then exports OTBTF's top-level names (:data:`OTBTF_NAMES`, imported on first
    use) and ``otbtf.model``, ``otbtf.ops``, ``otbtf.layers``, ``otbtf.dataset`` and
    ``otbtf.tfrecords`` are this package's modules, so code written for OTBTF runs
    unchanged.

    Args:
        package_folder: A checkout's ``otbtf`` folder whose other modules (such as
            ``otbtf.examples``) are imported from there; its own ``__init__`` and the
            modules above are this package's.

    Returns:
        Whether the aliases are in place (``False`` when OTBTF itself is importable).
    """
    existing = sys.modules.get("otbtf")
    if existing is not None:
        return bool(getattr(existing, "__otbtf_qgis__", False))
    folder = str(Path(package_folder).resolve()) if package_folder else None
    found = importlib.util.find_spec("otbtf")
    locations = [str(Path(place).resolve()) for place in (found.submodule_search_locations or [])] if found else []
    if found is not None and locations != ([folder] if folder else []):
        return False  # OTBTF itself is installed (a checkout given as package_folder is stood in for)
    package = types.ModuleType("otbtf")
    package.__path__ = [folder] if folder else []
    package.__doc__ = "otbtf_qgis standing in for OTBTF's Python API."
    package.__otbtf_qgis__ = True  # type: ignore[attr-defined]
    package.__all__ = list(OTBTF_NAMES)  # type: ignore[attr-defined]
    getattr_, dir_ = lazy_exports("otbtf", OTBTF_NAMES)
    package.__getattr__ = getattr_  # type: ignore[method-assign]
    package.__dir__ = dir_  # type: ignore[method-assign]
    sys.modules["otbtf"] = package
    for name, target in OTBTF_MODULES.items():
        module = importlib.import_module(target)
        sys.modules[f"otbtf.{name}"] = module
        setattr(package, name, module)
    return True


def _import_file(path: Path) -> types.ModuleType:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    module_name = f"otbtf_user_model_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"'{path}' cannot be imported as Python code. Give a .py file.", "MODEL_FILE")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(module_name, None)
        if not isinstance(exc, Exception):
            raise
        where = ""
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        if isinstance(exc, SyntaxError) and exc.lineno:
            where = f" (line {exc.lineno})"
        elif frames:
            where = f" (line {frames[-1].lineno})"
        raise ModelError(f"importing '{path}' failed{where}: {type(exc).__name__}: {exc}. Fix the file.",
                         "MODEL_FILE") from exc
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    return module


def model_classes(module: types.ModuleType) -> list[str]:
    """Names of the ``ModelBase`` subclasses a module defines (not the ones it imports)."""
    from otbtf_qgis.core.models.base import ModelBase

    return sorted(name for name, value in vars(module).items()
                  if inspect.isclass(value) and issubclass(value, ModelBase) and value is not ModelBase
                  and value.__module__ == module.__name__)


def load_model_class(model_file: str | Path, class_name: str = "") -> type[Any]:
    """Import ``model_file`` and return its model class.

    Args:
        model_file: A Python file defining a subclass of
            :class:`otbtf_qgis.core.models.base.ModelBase`.
        class_name: The class to use; may be empty when the file defines exactly one.

    Raises:
        ModelError: the file is missing, fails to import (the message has the line and
            the exception), lacks the class, or the class is not a ``ModelBase``.
    """
    from otbtf_qgis.core.models.base import ModelBase

    path = Path(model_file).expanduser()
    if not path.is_file():
        raise ModelError(f"the model file '{path}' does not exist. Give a Python file that defines a ModelBase "
                         "subclass.", "MODEL_FILE")
    install_otbtf_aliases()
    module = _import_file(path.resolve())
    defined = model_classes(module)
    name = class_name.strip()
    if not name:
        if len(defined) != 1:
            found = ", ".join(defined) if defined else "none"
            raise ModelError(f"'{path.name}' defines {len(defined)} ModelBase subclasses ({found}); set CLASS_NAME "
                             "to the one to train.", "CLASS_NAME")
        name = defined[0]
    value = getattr(module, name, None)
    if value is None:
        found = ", ".join(defined) if defined else "no ModelBase subclass"
        raise ModelError(f"'{path.name}' has no class '{name}'; it defines {found}. Check CLASS_NAME.", "CLASS_NAME")
    if not inspect.isclass(value) or not issubclass(value, ModelBase):
        raise ModelError(f"'{name}' in '{path.name}' is not a subclass of ModelBase (from otbtf_qgis.core.models.base "
                         "import ModelBase).", "CLASS_NAME")
    return value
