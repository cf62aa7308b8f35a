"""The base class of every OTBTF Processing algorithm."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from qgis.core import QgsProcessingAlgorithm, QgsProcessingFeedback
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from otbtf_qgis.processing.resources import icon
from otbtf_qgis.processing.worker import run_job

GROUPS = {
    "sampling": "Sampling",
    "training": "Training",
    "inference": "Inference",
    "tools": "Tools",
}


class OtbtfAlgorithm(QgsProcessingAlgorithm):
    """Common plumbing: ids, groups, icons, translation, and running a worker job.

    Subclasses set :attr:`NAME`, :attr:`DISPLAY_NAME`, :attr:`GROUP` (a key of
    :data:`GROUPS`) and :attr:`HELP`, and implement ``initAlgorithm`` and
    ``processAlgorithm``.
    """

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = "tools"
    HELP = ""

    def tr(self, text: str) -> str:
        """Translate ``text`` in the plugin's context."""
        return str(QCoreApplication.translate("OtbtfAlgorithm", text))

    def createInstance(self) -> OtbtfAlgorithm:  # noqa: N802 - QGIS API name
        """A fresh instance of the same algorithm."""
        return type(self)()

    def name(self) -> str:
        """The stable, lowercase id (``otbtf:<name>``)."""
        return self.NAME

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        """The translated name shown in the toolbox."""
        return self.tr(self.DISPLAY_NAME)

    def group(self) -> str:
        """The translated group name."""
        return self.tr(GROUPS[self.GROUP])

    def groupId(self) -> str:  # noqa: N802 - QGIS API name
        """The stable, lowercase group id."""
        return self.GROUP

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        """Help shown in the algorithm dialog."""
        return self.tr(self.HELP)

    def icon(self) -> QIcon:
        """The algorithm's icon."""
        return icon(self.NAME)

    def run_job(self, command: str, params: Mapping[str, Any], feedback: QgsProcessingFeedback | None,
                outputs: Iterable[str] = ()) -> dict[str, Any]:
        """Run ``command`` in the worker (see :func:`otbtf_qgis.processing.worker.run_job`)."""
        return run_job(command, params, feedback, outputs)
