"""``otbtf:modelserve``: apply a SavedModel over whole rasters, tile by tile, cropped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from otbtf_qgis.core.jobs.codec import config_to_dict
from otbtf_qgis.core.jobs.configs.modelserve import OUTPUT_TYPES, ServeConfig, serve_config_from_text
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm, parameter_errors
from otbtf_qgis.processing.helptext import LIST_GRAMMAR, LIST_HINT, NAMES_HINT, NODATA_HINT, SIZES_HINT


class ModelServeAlgorithm(OtbtfAlgorithm):
    """OTBTF's TensorflowModelServe: the model applied tile by tile, outputs identical for any tile size."""

    NAME = "modelserve"
    DISPLAY_NAME = "Model serve (apply a SavedModel)"
    GROUP = "inference"
    HELP = (
        "Applies a TensorFlow SavedModel over whole rasters, tile by tile, in bounded memory. Each source raster "
        "feeds one model input. The receptive field (RFIELDS, input pixels per tile) and the expression field "
        "(EFIELD, output pixels per tile) come from the model's otbtf_model.json when it has one, so sources, model "
        "and output are enough. The output grid is the sources' common extent shrunk by the receptive field "
        "(as OTBTF: width 1000, rf 64, ef 32 gives 960 pixels from input pixel 16); its pixels do not depend on the "
        "tile size. Output pixels centred on a nodata input pixel get BACKGROUND (the output's nodata); tiles "
        "with no valid pixel are not computed. TILE_SIZE 0 chooses large tiles, which is much faster. The optional "
        "class map is the argmax of the first output, with a palette and the model's class names.\n\n"
        "RFIELDS (sizes), PLACEHOLDERS (names) and NODATA are per-source lists; OUTPUT_NAMES, USER_PLACEHOLDERS "
        "(name=value) and CREATION_OPTIONS (KEY=VALUE) are lists; EFIELD is a size.\n\n" + LIST_GRAMMAR
    )

    SOURCES = "SOURCES"
    MODEL = "MODEL"
    RFIELDS = "RFIELDS"
    PLACEHOLDERS = "PLACEHOLDERS"
    OUTPUT_NAMES = "OUTPUT_NAMES"
    EFIELD = "EFIELD"
    FULLYCONV = "FULLYCONV"
    SPCSCALE = "SPCSCALE"
    TILE_SIZE = "TILE_SIZE"
    NODATA = "NODATA"
    BACKGROUND = "BACKGROUND"
    USER_PLACEHOLDERS = "USER_PLACEHOLDERS"
    OUTPUT_TYPE = "OUTPUT_TYPE"
    CREATION_OPTIONS = "CREATION_OPTIONS"
    COG = "COG"
    OUTPUT = "OUTPUT"
    OUTPUT_CLASSES = "OUTPUT_CLASSES"
    SCHEDULER = "SCHEDULER"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API name
        """Declare the parameters (rarely needed ones are advanced)."""
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.SOURCES, self.tr("Source rasters (one per model input)"), QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, self.tr("SavedModel folder"), behavior=QgsProcessingParameterFile.Folder))
        self.addParameter(QgsProcessingParameterString(
            self.RFIELDS, self.tr(f"Receptive field per source ({SIZES_HINT}; empty: from the model)"),
            defaultValue="", optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.OUTPUT_NAMES, self.tr(f"Model outputs to write ({LIST_HINT}; empty: from the model)"),
            defaultValue="", optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.EFIELD, self.tr("Expression field (32 or 32x32; empty: from the model)"),
            defaultValue="", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Output raster")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_CLASSES, self.tr("Class map (argmax of the first output)"), optional=True,
            createByDefault=False))
        advanced = [
            QgsProcessingParameterString(
                self.PLACEHOLDERS, self.tr(f"Model input per source ({NAMES_HINT}; empty: from the model)"),
                defaultValue="", optional=True),
            QgsProcessingParameterBoolean(
                self.FULLYCONV, self.tr("Fully convolutional (off: one patch per output pixel)"), defaultValue=True),
            QgsProcessingParameterNumber(
                self.SPCSCALE, self.tr("Spacing scale (output pixel size / first source's)"),
                QgsProcessingParameterNumber.Double, defaultValue=1.0, minValue=1e-6),
            QgsProcessingParameterNumber(
                self.TILE_SIZE, self.tr("Tile size in output pixels (0: automatic)"),
                QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0),
            QgsProcessingParameterString(
                self.NODATA, self.tr(f"Nodata per source ({NODATA_HINT})"),
                defaultValue="", optional=True),
            QgsProcessingParameterNumber(
                self.BACKGROUND, self.tr("Background value (output pixels on nodata input)"),
                QgsProcessingParameterNumber.Double, defaultValue=0.0),
            QgsProcessingParameterString(
                self.USER_PLACEHOLDERS,
                self.tr(f"Extra model inputs, name=value ({LIST_HINT}), e.g. dropout=0.0, is_training=false"),
                defaultValue="", optional=True),
            QgsProcessingParameterEnum(
                self.OUTPUT_TYPE, self.tr("Output data type"), options=list(OUTPUT_TYPES), defaultValue=0),
            QgsProcessingParameterString(
                self.CREATION_OPTIONS,
                self.tr(f"GeoTIFF creation options, KEY=VALUE ({LIST_HINT}), e.g. COMPRESS=LZW, PREDICTOR=3 "
                        "(default: tiled, ZSTD level 1)"), defaultValue="", optional=True),
            QgsProcessingParameterBoolean(self.COG, self.tr("Cloud Optimized GeoTIFF"), defaultValue=False),
            self._scheduler_parameter(),
        ]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)

    def _scheduler_parameter(self) -> QgsProcessingParameterString:
        parameter = QgsProcessingParameterString(
            self.SCHEDULER, self.tr("Dask scheduler (empty: this process; local:N; tcp://host:port)"),
            defaultValue="", optional=True)
        parameter.setHelp(self.tr(
            "Where to compute. Empty: in one process. local:N: N Dask worker processes on this machine, each "
            "computing regions of the output on its share of the cores. tcp://host:port: the workers of a running "
            "Dask cluster, which must see the sources, the model and the output folder under the same paths and "
            "run the same versions of otbtf_qgis and TensorFlow. The outputs are the same; a job run again after a "
            "failure or cancel reuses the regions already computed."))
        return parameter

    def build_config(self, parameters: dict[str, Any], context: QgsProcessingContext,
                     feedback: QgsProcessingFeedback | None) -> ServeConfig:
        """The ``modelserve`` job's config (see :meth:`OtbtfAlgorithm.build_config`)."""
        layers = self.parameterAsLayerList(parameters, self.SOURCES, context)
        if not layers:
            raise QgsProcessingException(f"{self.SOURCES}: give at least one raster.")
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        classes = self.parameterAsOutputLayer(parameters, self.OUTPUT_CLASSES, context) or ""
        for key, path in ((self.OUTPUT, output), (self.OUTPUT_CLASSES, classes)):
            if path and Path(path).suffix.lower() not in {".tif", ".tiff"}:
                raise QgsProcessingException(f"{key}: '{path}' must be a GeoTIFF file (.tif).")
        with parameter_errors():
            return serve_config_from_text(
                [layer.source() for layer in layers],
                self.parameterAsFile(parameters, self.MODEL, context),
                output,
                rfields=self.parameterAsString(parameters, self.RFIELDS, context),
                placeholders=self.parameterAsString(parameters, self.PLACEHOLDERS, context),
                output_names=self.parameterAsString(parameters, self.OUTPUT_NAMES, context),
                efield=self.parameterAsString(parameters, self.EFIELD, context),
                fully_convolutional=self.parameterAsBoolean(parameters, self.FULLYCONV, context),
                spacing_scale=self.parameterAsDouble(parameters, self.SPCSCALE, context),
                tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
                nodata=self.parameterAsString(parameters, self.NODATA, context),
                background=self.parameterAsDouble(parameters, self.BACKGROUND, context),
                user_placeholders=self.parameterAsString(parameters, self.USER_PLACEHOLDERS, context),
                output_type=OUTPUT_TYPES[self.parameterAsEnum(parameters, self.OUTPUT_TYPE, context)],
                creation_options=self.parameterAsString(parameters, self.CREATION_OPTIONS, context),
                cog=self.parameterAsBoolean(parameters, self.COG, context),
                output_classes=classes,
                scheduler=self.parameterAsString(parameters, self.SCHEDULER, context),
            )

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Build the serving config and run it in the worker."""
        config = self.build_config(parameters, context, feedback)
        written = [path for path in (config.output, config.output_classes) if path]
        result = self.run_job(self.NAME, config_to_dict(config), feedback, outputs=written)
        feedback.pushInfo(
            f"{result['width']}x{result['height']} pixels, {result['bands']} band(s) from "
            f"{', '.join(result['output_names'])}; {result['tiles']} tiles of "
            f"{result['tile_size'][0]}x{result['tile_size'][1]} ({result['skipped_tiles']} all nodata) in "
            f"{result['seconds']:.1f} s")
        if "regions" in result:
            feedback.pushInfo(f"{result['regions']} regions on {result['workers']} Dask worker(s), "
                              f"{result['regions_reused']} reused from an earlier run")
        return {self.OUTPUT: config.output, self.OUTPUT_CLASSES: config.output_classes or None}
