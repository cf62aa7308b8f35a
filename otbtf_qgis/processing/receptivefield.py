"""``otbtf:receptivefield``: a SavedModel's padding-free output size and the serving settings to use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from otbtf_qgis.core.jobs.codec import config_to_dict
from otbtf_qgis.core.jobs.configs.receptivefield import ReceptiveFieldConfig
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm


class ReceptiveFieldAlgorithm(OtbtfAlgorithm):
    """Reports which output pixels of a model are free of convolution padding, and how to serve it."""

    NAME = "receptivefield"
    DISPLAY_NAME = "Receptive field"
    GROUP = "tools"
    HELP = (
        "Analyses a SavedModel for an input of INPUT_SIZE × INPUT_SIZE pixels: the output size and the padding-free "
        "(valid) output size of every layer and every output, from the layers when possible, else by running the "
        "model. Output pixels near a tile border depend on the convolutions' padding; a cropped output "
        "<name>_crop<N> drops N pixels on each side and is seamless when N covers that border.\n\n"
        "It recommends the serving parameters for Model serve: OUTPUT_NAME (the smallest seamless cropped output), "
        "RFIELD (the input size) and EFIELD (= RFIELD − 2·N). For the FCNN on 64 pixels: 33 valid pixels, so "
        "predictions_softmax_tensor_crop16 with RFIELD 64 and EFIELD 32. The first input is always square; the "
        "other inputs of a multi-input model keep, per axis, the ratio of their training patches to the first "
        "input's (from otbtf_model.json)."
    )

    MODEL = "MODEL"
    INPUT_SIZE = "INPUT_SIZE"
    OUTPUT_HTML = "OUTPUT_HTML"
    TABLE = "TABLE"
    OUTPUT_NAME = "OUTPUT_NAME"
    RFIELD = "RFIELD"
    EFIELD = "EFIELD"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API name
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterFile(self.MODEL, self.tr("Model (SavedModel folder)"),
                                                     behavior=QgsProcessingParameterFile.Folder))
        self.addParameter(QgsProcessingParameterNumber(self.INPUT_SIZE, self.tr("Input size (pixels)"),
                                                       QgsProcessingParameterNumber.Integer, defaultValue=64,
                                                       minValue=1))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT_HTML, self.tr("Report"),
                                                                self.tr("HTML files (*.html)"), optional=True,
                                                                createByDefault=False))
        self.addOutput(QgsProcessingOutputString(self.TABLE, self.tr("Report (Markdown)")))
        self.addOutput(QgsProcessingOutputString(self.OUTPUT_NAME, self.tr("Recommended output name")))
        self.addOutput(QgsProcessingOutputNumber(self.RFIELD, self.tr("Recommended receptive field")))
        self.addOutput(QgsProcessingOutputNumber(self.EFIELD, self.tr("Recommended expression field")))

    def build_config(self, parameters: dict[str, Any], context: QgsProcessingContext,
                     feedback: QgsProcessingFeedback | None) -> ReceptiveFieldConfig:
        """The ``receptivefield`` job's config (see :meth:`OtbtfAlgorithm.build_config`)."""
        model = self.parameterAsFile(parameters, self.MODEL, context)
        if not model:
            raise QgsProcessingException(f"{self.MODEL}: give the SavedModel folder.")
        return ReceptiveFieldConfig(model=model, input_size=self.parameterAsInt(parameters, self.INPUT_SIZE, context))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run the ``receptivefield`` job in the worker; write the HTML report if asked."""
        config = self.build_config(parameters, context, feedback)
        result = self.run_job(self.NAME, config_to_dict(config), feedback)
        outputs: dict[str, Any] = {
            self.TABLE: result["table"],
            self.OUTPUT_NAME: result["output_name"],
            self.RFIELD: result["rfield"],
            self.EFIELD: result["efield"],
        }
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        if html_path:
            Path(html_path).write_text(result["html"], encoding="utf-8")
            outputs[self.OUTPUT_HTML] = html_path
        return outputs
