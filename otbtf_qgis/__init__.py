"""otbtf_qgis: the OTBTF deep-learning workflow for QGIS Processing, scripts and Python.

This file is the QGIS plugin entry point. It imports nothing heavy: the worker process
imports ``otbtf_qgis.core`` through this package, so QGIS is imported only inside
:func:`classFactory`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def classFactory(iface: Any) -> Any:  # noqa: N802 - name required by QGIS
    """Return the plugin instance QGIS asks for when it loads the plugin."""
    from otbtf_qgis.plugin import OtbtfPlugin

    return OtbtfPlugin(iface)
