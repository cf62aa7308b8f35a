"""Where the plugin's icons and shipped files are, in a checkout and in an installed plugin."""

from __future__ import annotations

import functools
from pathlib import Path

from qgis.PyQt.QtGui import QIcon

_PACKAGE = Path(__file__).resolve().parent.parent


@functools.cache
def resources_dir() -> Path:
    """The ``resources`` folder: inside the installed plugin, or at the top of a checkout.

    Looked up once: every algorithm asks for its icon.
    """
    here = Path(__file__).parent.parent
    for candidate in (here / "resources", _PACKAGE / "resources", _PACKAGE.parent / "resources"):
        if candidate.is_dir():
            return candidate
    return _PACKAGE / "resources"


def icon(name: str) -> QIcon:
    """The icon ``resources/icons/<name>.svg`` (the provider icon when it does not exist)."""
    icons = resources_dir() / "icons"
    path = icons / f"{name}.svg"
    if not path.exists():
        path = icons / "otbtf.svg"
    return QIcon(str(path))
