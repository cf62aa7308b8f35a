"""``otbtf:createenvironment``: make a Python environment with TensorFlow for the plugin's worker."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterString,
)

from otbtf_qgis.core.errors import OtbtfError
from otbtf_qgis.core.jobs.environment import (
    DEFAULT_REQUIREMENTS,
    DEVICES,
    create_worker_environment,
    device_requirements,
    resolve_device,
)
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm
from otbtf_qgis.processing.runner import PYTHON_SETTING, FeedbackReporter, default_environment_folder


def qgis_python() -> str:
    """The Python interpreter QGIS itself runs on (inside QGIS ``sys.executable`` is QGIS)."""
    base = Path(sys.base_prefix)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [base / "bin" / f"python{version}", base / "bin" / "python3", base / "python.exe",
                  base / "python3.exe", Path("/usr/bin/python3")]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    return sys.executable


class CreateEnvironmentAlgorithm(OtbtfAlgorithm):
    """Creates the worker's virtual environment and makes the plugin use it."""

    NAME = "createenvironment"
    DISPLAY_NAME = "Create TensorFlow environment"
    GROUP = "tools"
    HELP = ("Creates a Python virtual environment with TensorFlow for the OTBTF worker, on QGIS's own Python "
            "(with its system packages, so GDAL's bindings match), installs the pinned TensorFlow with pip, checks "
            "it, and sets it as the provider's Python interpreter. Needs the network access pip needs and about "
            "1.5 GB of disk. Running it again on the same folder updates the environment. On Debian/Ubuntu the "
            "packages python3-venv and python3-gdal must be installed.\n\n"
            "DEVICE: cpu installs tensorflow-cpu; cuda (Linux with an NVIDIA driver) installs tensorflow[and-cuda] at "
            "the same version instead, with the CUDA libraries (several GB more); the default choice picks cuda when "
            "nvidia-smi runs and lists a GPU, else cpu. Serving and training then run the model on the GPU.")

    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    PYTHON = "PYTHON"
    PACKAGES = "PACKAGES"
    DEVICE = "DEVICE"
    SET_DEFAULT = "SET_DEFAULT"
    PYTHON_PATH = "PYTHON_PATH"
    TENSORFLOW = "TENSORFLOW"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API name
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.OUTPUT_FOLDER, self.tr("Environment folder"), defaultValue=str(default_environment_folder())))
        # A string, not a file parameter: interpreters are often extension-less symlinks,
        # which the file parameter's validation rejects.
        self.addParameter(QgsProcessingParameterString(
            self.PYTHON, self.tr("Base Python (empty: QGIS's Python)"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.PACKAGES, self.tr("Packages to install (pip requirement specifiers, separated by spaces as on pip's "
                                   "command line)"),
            defaultValue=" ".join(DEFAULT_REQUIREMENTS)))
        self.addParameter(QgsProcessingParameterEnum(
            self.DEVICE, self.tr("Device (automatic: cuda when nvidia-smi finds a GPU)"), options=list(DEVICES),
            defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            self.SET_DEFAULT, self.tr("Use it as the provider's Python interpreter"), defaultValue=True))
        self.addOutput(QgsProcessingOutputString(self.PYTHON_PATH, self.tr("Python interpreter")))
        self.addOutput(QgsProcessingOutputString(self.TENSORFLOW, self.tr("TensorFlow version")))

    def requirements(self, parameters: dict[str, Any], context: QgsProcessingContext,
                     feedback: QgsProcessingFeedback | None) -> list[str]:
        """What pip installs: PACKAGES, with TensorFlow's CUDA package instead of its CPU one for DEVICE cuda.

        Raises:
            InputError: DEVICE cuda outside Linux.
        """
        # pip's own syntax, not a list of the one grammar: specifiers hold commas and semicolons.
        packages = self.parameterAsString(parameters, self.PACKAGES, context).split()
        choice = DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]
        device = resolve_device(choice)
        if feedback is not None:
            feedback.pushInfo(f"Device: {device}" + (" (nvidia-smi lists a GPU)" if choice == "auto" and
                                                     device == "cuda" else ""))
        return device_requirements(packages, device)

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Create the environment, check it, and store the setting."""
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        base = self.parameterAsString(parameters, self.PYTHON, context) or qgis_python()
        try:
            packages = self.requirements(parameters, context, feedback)
            result = create_worker_environment(folder, base, packages, verify=True,
                                               reporter=FeedbackReporter(feedback))
        except OtbtfError as exc:  # CancelledError included: its message says how to resume
            raise QgsProcessingException(str(exc)) from exc
        if self.parameterAsBoolean(parameters, self.SET_DEFAULT, context):
            from processing.core.ProcessingConfig import ProcessingConfig  # type: ignore[import-not-found]

            ProcessingConfig.setSettingValue(PYTHON_SETTING, result["python"])
            feedback.pushInfo(f"The OTBTF provider now uses {result['python']}")
        return {self.PYTHON_PATH: result["python"], self.TENSORFLOW: result.get("tensorflow"),
                self.OUTPUT_FOLDER: folder}
