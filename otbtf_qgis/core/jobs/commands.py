"""The registry of worker commands.

A command is a job the worker runs: a config dataclass (see :mod:`otbtf_qgis.core.jobs.codec`)
and a function ``run(config, reporter) -> dict``. Both are named by import path and
imported only when the command runs, so listing commands or parsing options never
imports TensorFlow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from otbtf_qgis.core.progress import Reporter


@dataclass(frozen=True)
class CommandSpec:
    """How to run one worker command.

    Attributes:
        config: ``"module:Class"`` of the config dataclass.
        run: ``"module:function"`` of ``run(config, reporter) -> dict``.
        needs_tensorflow: Whether the command imports TensorFlow (checked first, with a
            clear message when it is missing).
        help: One-line description.
    """

    config: str
    run: str
    needs_tensorflow: bool
    help: str

    def config_class(self) -> type[Any]:
        """Import and return the config dataclass."""
        return _import(self.config)  # type: ignore[no-any-return]

    def function(self) -> Callable[[Any, Reporter], dict[str, Any]]:
        """Import and return the run function."""
        return _import(self.run)  # type: ignore[no-any-return]


def _import(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


#: The worker commands by name (``python -m otbtf_qgis.core NAME``), in the order of ``--help``.
#: A command's config lives in ``jobs/configs/<name>.py`` and its job in ``<role>/<name>.py``.
COMMANDS: dict[str, CommandSpec] = {
    "environmentinfo": CommandSpec(
        "otbtf_qgis.core.jobs.configs.environmentinfo:EnvironmentInfoConfig",
        "otbtf_qgis.core.tools.environmentinfo:run", needs_tensorflow=True,
        help="Report Python, TensorFlow, Keras, numpy and GDAL versions and TensorFlow's devices."),
    "diagnostics": CommandSpec(
        "otbtf_qgis.core.jobs.configs.diagnostics:DiagnosticsConfig",
        "otbtf_qgis.core.tools.diagnostics:run", needs_tensorflow=False,
        help="Exercise the worker protocol (progress, errors, crashes, cancel) without TensorFlow."),
    "patchesselection": CommandSpec(
        "otbtf_qgis.core.jobs.configs.patchesselection:PatchesSelectionConfig",
        "otbtf_qgis.core.data.patchesselection:run", needs_tensorflow=False,
        help="Sample patch positions on a grid over a raster and split them train/valid/test."),
    "patchesextraction": CommandSpec(
        "otbtf_qgis.core.jobs.configs.patchesextraction:PatchesExtractionConfig",
        "otbtf_qgis.core.data.patchesextraction:run", needs_tensorflow=False,
        help="Extract the patches of one or more rasters at points into patches-images."),
    "createtfrecords": CommandSpec(
        "otbtf_qgis.core.jobs.configs.createtfrecords:CreateTFRecordsConfig",
        "otbtf_qgis.core.data.createtfrecords:run", needs_tensorflow=True,
        help="Convert patches folders (train, valid, test) to TFRecords shards."),
    "trainmodel": CommandSpec(
        "otbtf_qgis.core.jobs.configs.trainmodel:TrainModelConfig",
        "otbtf_qgis.core.training.trainmodel:run", needs_tensorflow=True,
        help="Train the FCNN (or a ModelBase subclass from a Python file) and export a SavedModel."),
    "receptivefield": CommandSpec(
        "otbtf_qgis.core.jobs.configs.receptivefield:ReceptiveFieldConfig",
        "otbtf_qgis.core.models.receptivefield:run", needs_tensorflow=True,
        help="Report a SavedModel's padding-free output size for an input size and the serving settings."),
    "modelserve": CommandSpec(
        "otbtf_qgis.core.jobs.configs.modelserve:ServeConfig",
        "otbtf_qgis.core.serving.modelserve:run", needs_tensorflow=True,
        help="Apply a SavedModel over whole rasters, tile by tile, cropped (OTBTF's TensorflowModelServe)."),
    "accuracyassessment": CommandSpec(
        "otbtf_qgis.core.jobs.configs.accuracyassessment:AccuracyAssessmentConfig",
        "otbtf_qgis.core.assessment.accuracyassessment:run", needs_tensorflow=False,
        help="Assess a class map against reference polygons, points or a label raster: confusion matrix, "
             "accuracies with confidence intervals, kappa, F1 and area estimates."),
}
