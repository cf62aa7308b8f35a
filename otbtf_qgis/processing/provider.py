"""The ``otbtf`` Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from otbtf_qgis import __version__
from otbtf_qgis.processing.accuracyassessment import AccuracyAssessmentAlgorithm
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm
from otbtf_qgis.processing.createenvironment import CreateEnvironmentAlgorithm
from otbtf_qgis.processing.createtfrecords import CreateTFRecordsAlgorithm
from otbtf_qgis.processing.environmentinfo import EnvironmentInfoAlgorithm
from otbtf_qgis.processing.modelserve import ModelServeAlgorithm
from otbtf_qgis.processing.patchesextraction import PatchesExtractionAlgorithm
from otbtf_qgis.processing.patchesselection import PatchesSelectionAlgorithm
from otbtf_qgis.processing.receptivefield import ReceptiveFieldAlgorithm
from otbtf_qgis.processing.resources import icon
from otbtf_qgis.processing.runner import PYTHON_SETTING
from otbtf_qgis.processing.trainmodel import TrainModelAlgorithm


def algorithm_classes() -> list[type[OtbtfAlgorithm]]:
    """Every algorithm the provider offers."""
    return [
        EnvironmentInfoAlgorithm,
        CreateEnvironmentAlgorithm,
        PatchesSelectionAlgorithm,
        PatchesExtractionAlgorithm,
        CreateTFRecordsAlgorithm,
        TrainModelAlgorithm,
        ReceptiveFieldAlgorithm,
        ModelServeAlgorithm,
        AccuracyAssessmentAlgorithm,
    ]


class OtbtfProvider(QgsProcessingProvider):
    """Provider ``otbtf`` ("OTBTF"): the deep-learning workflow, run in a TensorFlow worker."""

    def id(self) -> str:
        """The stable provider id."""
        return "otbtf"

    def name(self) -> str:
        """The display name."""
        return "OTBTF"

    def longName(self) -> str:  # noqa: N802 - QGIS API name
        """Name and version."""
        return f"OTBTF deep learning ({__version__})"

    def icon(self) -> QIcon:
        """The provider icon."""
        return icon("otbtf")

    def versionInfo(self) -> str:  # noqa: N802 - QGIS API name
        """The plugin version."""
        return __version__

    def load(self) -> bool:
        """Register the provider's settings, then the algorithms."""
        try:
            from processing.core.ProcessingConfig import ProcessingConfig, Setting  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            ProcessingConfig.settingIcons[self.name()] = self.icon()
            ProcessingConfig.addSetting(Setting(
                self.name(), PYTHON_SETTING, "Python interpreter with TensorFlow (empty: automatic)", "",
                valuetype=Setting.FILE))
            ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        """Remove the provider's settings."""
        try:
            from processing.core.ProcessingConfig import ProcessingConfig
        except ImportError:
            return
        ProcessingConfig.removeSetting(PYTHON_SETTING)

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API name
        """Add one instance of each algorithm."""
        for cls in algorithm_classes():
            self.addAlgorithm(cls())
