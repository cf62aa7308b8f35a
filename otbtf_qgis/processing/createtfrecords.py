"""``otbtf:createtfrecords``: patches folders to TFRecords shards."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
)

from otbtf_qgis.core.jobs.codec import config_to_dict
from otbtf_qgis.core.jobs.configs.createtfrecords import CreateTFRecordsConfig
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm


class CreateTFRecordsAlgorithm(OtbtfAlgorithm):
    """Convert the output folders of patches extraction to TFRecords."""

    NAME = "createtfrecords"
    DISPLAY_NAME = "Create TFRecords"
    GROUP = "sampling"
    HELP = (
        "Converts one or more output folders of Patches extraction (e.g. train, valid and test) to TFRecords in "
        "OTBTF's format: output_shapes.json, output_types.json and shards 0.records, 1.records, ... of "
        "N_SAMPLES_PER_SHARD samples. Give a folder (or its manifest.json) per input; in a graphical model, "
        "connect the Manifest output of Patches extraction. With one input, OUTPUT_DIR is its TFRecords folder; "
        "with several, each goes to OUTPUT_DIR/<input folder name>.\n\n"
        "SHUFFLE writes the samples in a random order fixed by SEED (shards then mix the whole area); "
        "DROP_REMAINDER leaves out the samples that do not fill a last shard (OTBTF's default). The manifest of "
        "each output lists the point id of every written sample.\n\n"
        "OUTPUT_DIR must be a new or empty folder, or a previous output of this algorithm (then replaced once "
        "the new output is complete); any other non-empty folder is refused."
    )

    INPUT = "INPUT"
    N_SAMPLES_PER_SHARD = "N_SAMPLES_PER_SHARD"
    SHUFFLE = "SHUFFLE"
    SEED = "SEED"
    DROP_REMAINDER = "DROP_REMAINDER"
    OUTPUT_DIR = "OUTPUT_DIR"
    N_SAMPLES = "N_SAMPLES"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API name
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterMultipleLayers(self.INPUT, self.tr("Patches folders (or their "
                                                                                   "manifest.json)"),
                                                               QgsProcessing.TypeFile))
        self.addParameter(QgsProcessingParameterNumber(self.N_SAMPLES_PER_SHARD, self.tr("Samples per shard"),
                                                       QgsProcessingParameterNumber.Integer, defaultValue=100,
                                                       minValue=1))
        self.addParameter(QgsProcessingParameterBoolean(self.SHUFFLE, self.tr("Write samples in random order"),
                                                        defaultValue=True))
        self.addParameter(QgsProcessingParameterNumber(self.SEED, self.tr("Random seed"),
                                                       QgsProcessingParameterNumber.Integer, defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean(self.DROP_REMAINDER, self.tr("Drop the samples of an "
                                                                                     "incomplete last shard"),
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_DIR, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputNumber(self.N_SAMPLES, self.tr("Number of samples written")))

    def build_config(self, parameters: dict[str, Any], context: QgsProcessingContext,
                     feedback: QgsProcessingFeedback | None) -> CreateTFRecordsConfig:
        """The ``createtfrecords`` job's config (see :meth:`OtbtfAlgorithm.build_config`)."""
        inputs = tuple(path for path in self.parameterAsFileList(parameters, self.INPUT, context) if path)
        if not inputs:
            raise QgsProcessingException(f"{self.INPUT}: give at least one patches folder (or its manifest.json).")
        return CreateTFRecordsConfig(
            inputs=inputs,
            output_dir=self.parameterAsFileOutput(parameters, self.OUTPUT_DIR, context),
            n_samples_per_shard=self.parameterAsInt(parameters, self.N_SAMPLES_PER_SHARD, context),
            shuffle=self.parameterAsBoolean(parameters, self.SHUFFLE, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            drop_remainder=self.parameterAsBoolean(parameters, self.DROP_REMAINDER, context),
        )

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run the ``createtfrecords`` job in the worker."""
        config = self.build_config(parameters, context, feedback)
        result = self.run_job(self.NAME, config_to_dict(config), feedback, outputs=[config.output_dir])
        total = sum(int(o.get("n_samples", 0)) for o in result.get("outputs", {}).values())
        return {self.OUTPUT_DIR: config.output_dir, self.N_SAMPLES: total}
