"""Lazy exports for package ``__init__`` modules (PEP 562), on the standard library only.

A package lists what it exports and where each name lives; the module holding a name is
imported the first time the name is used, so importing the package stays cheap (no
TensorFlow, GDAL or numpy until a name that needs them is touched)::

    __getattr__, __dir__ = lazy_exports(__name__, {"TFRecords": "otbtf_qgis.core.data.tfrecords"})

A target ending in ``:`` names a module itself (``"ops": "otbtf_qgis.core.models.ops:"``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` that import ``exports`` on first use.

    Args:
        package: The package's ``__name__``.
        exports: Exported name → module holding it (``"module:"`` for the module itself).
    """

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module-level hook of PEP 562
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        value = module if not attribute and target.endswith(":") else getattr(module, attribute or name)
        setattr(sys.modules[package], name, value)  # later lookups skip this hook
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the module-level hook of PEP 562
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
