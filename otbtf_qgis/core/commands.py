"""The registry of worker commands.

A command is a job the worker runs: a config dataclass (see :mod:`otbtf_qgis.core.config`)
and a function ``run(config, reporter) -> dict``. Both are named by import path and
imported only when the command runs, so listing commands or parsing options never
imports TensorFlow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.progress import Reporter


@dataclass(frozen=True)
class CommandSpec:
    """How to run one worker command.

    Attributes:
        name: Command name on the command line (``python -m otbtf_qgis.core NAME``).
        config: ``"module:Class"`` of the config dataclass.
        run: ``"module:function"`` of ``run(config, reporter) -> dict``.
        needs_tensorflow: Whether the command imports TensorFlow (checked first, with a
            clear message when it is missing).
        help: One-line description.
    """

    name: str
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


COMMANDS: dict[str, CommandSpec] = {}


def register(spec: CommandSpec) -> CommandSpec:
    """Add a command to the registry (names are unique)."""
    if spec.name in COMMANDS:
        raise ValueError(f"command {spec.name!r} is registered twice")
    COMMANDS[spec.name] = spec
    return spec


def get_command(name: str) -> CommandSpec:
    """Return the command called ``name``.

    Raises:
        InputError: listing the available commands when ``name`` is unknown.
    """
    try:
        return COMMANDS[name]
    except KeyError:
        raise InputError(f"unknown command '{name}'. Available commands: {', '.join(sorted(COMMANDS))}.",
                         "COMMAND") from None


register(CommandSpec("environmentinfo", "otbtf_qgis.core.envinfo:EnvironmentInfoConfig",
                     "otbtf_qgis.core.envinfo:run", True,
                     "Report Python, TensorFlow, Keras, numpy and GDAL versions and TensorFlow's devices."))
register(CommandSpec("diagnostics", "otbtf_qgis.core.diagnostics:DiagnosticsConfig",
                     "otbtf_qgis.core.diagnostics:run", False,
                     "Exercise the worker protocol (progress, errors, crashes, cancel) without TensorFlow."))
register(CommandSpec("patchesselection", "otbtf_qgis.core.sampling_config:PatchesSelectionConfig",
                     "otbtf_qgis.core.sampling:run", False,
                     "Sample patch positions on a grid over a raster and split them train/valid/test."))
register(CommandSpec("patchesextraction", "otbtf_qgis.core.extraction_config:PatchesExtractionConfig",
                     "otbtf_qgis.core.extraction:run", False,
                     "Extract the patches of one or more rasters at points into patches-images."))
register(CommandSpec("createtfrecords", "otbtf_qgis.core.createtfrecords_config:CreateTFRecordsConfig",
                     "otbtf_qgis.core.createtfrecords:run", True,
                     "Convert patches folders (train, valid, test) to TFRecords shards."))
register(CommandSpec("trainmodel", "otbtf_qgis.core.training_config:TrainModelConfig",
                     "otbtf_qgis.core.training:run", True,
                     "Train the FCNN (or a ModelBase subclass from a Python file) and export a SavedModel."))
register(CommandSpec("receptivefield", "otbtf_qgis.core.receptive_field_config:ReceptiveFieldConfig",
                     "otbtf_qgis.core.receptive_field:run", True,
                     "Report a SavedModel's padding-free output size for an input size and the serving settings."))
register(CommandSpec("modelserve", "otbtf_qgis.core.serving.config:ServeConfig",
                     "otbtf_qgis.core.serving.engine:run", True,
                     "Apply a SavedModel over whole rasters, tile by tile, cropped (OTBTF's TensorflowModelServe)."))
