"""``otbtf:environmentinfo``: versions and devices of the worker's Python and TensorFlow."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputString,
)

from otbtf_qgis.core.jobs.codec import config_to_dict
from otbtf_qgis.core.jobs.configs.environmentinfo import EnvironmentInfoConfig, gpu_summary
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm


class EnvironmentInfoAlgorithm(OtbtfAlgorithm):
    """Reports what a user attaches to a bug report."""

    NAME = "environmentinfo"
    DISPLAY_NAME = "Environment information"
    GROUP = "tools"
    HELP = ("Runs the worker Python and reports its Python, TensorFlow, Keras, numpy and GDAL versions and the "
            "devices TensorFlow sees, with its GPUs (GPUS: none when it sees none). Attach this to bug reports. If "
            "TensorFlow is missing, the message says how to install it.")

    TENSORFLOW = "TENSORFLOW"
    KERAS = "KERAS"
    PYTHON = "PYTHON"
    NUMPY = "NUMPY"
    GDAL = "GDAL"
    DEVICES = "DEVICES"
    GPUS = "GPUS"
    REPORT = "REPORT"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API name
        """Declare the outputs (no input)."""
        for key, label in ((self.PYTHON, "Python version"), (self.TENSORFLOW, "TensorFlow version"),
                           (self.KERAS, "Keras version"), (self.NUMPY, "numpy version"),
                           (self.GDAL, "GDAL version"), (self.DEVICES, "TensorFlow devices"),
                           (self.GPUS, "GPUs TensorFlow sees"),
                           (self.REPORT, "Full report (JSON)")):
            self.addOutput(QgsProcessingOutputString(key, self.tr(label)))

    def build_config(self, parameters: dict[str, Any], context: QgsProcessingContext,
                     feedback: QgsProcessingFeedback | None) -> EnvironmentInfoConfig:
        """The ``environmentinfo`` job's config: it has no setting."""
        return EnvironmentInfoConfig()

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run the ``environmentinfo`` job in the worker."""
        config = self.build_config(parameters, context, feedback)
        info = self.run_job(self.NAME, config_to_dict(config), feedback)
        devices = ", ".join(f"{d['name']} ({d['type']})" for d in info.get("tensorflow_devices", []))
        return {
            self.PYTHON: info.get("python"),
            self.TENSORFLOW: info.get("tensorflow"),
            self.KERAS: info.get("keras"),
            self.NUMPY: info.get("numpy"),
            self.GDAL: info.get("gdal"),
            self.DEVICES: devices,
            self.GPUS: gpu_summary(info.get("gpus", [])),
            self.REPORT: json.dumps(info),
        }

