"""The QGIS plugin object: registers the OTBTF Processing provider."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication


class OtbtfPlugin:
    """Registers the ``otbtf`` provider; adds no GUI of its own (algorithms live in the toolbox)."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: Any = None

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API name
        """Create and register the Processing provider (called by QGIS and qgis_process)."""
        if self.provider is not None:
            return
        from otbtf_qgis.processing.provider import OtbtfProvider

        self.provider = OtbtfProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API name
        """Called when the plugin is loaded in the desktop application."""
        self.initProcessing()

    def unload(self) -> None:
        """Remove the provider when the plugin is unloaded."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
