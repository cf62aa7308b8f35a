"""``otbtf:modelserve``: apply a SavedModel over whole rasters, tile by tile, cropped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)
from qgis.PyQt import sip

from otbtf_qgis.core.jobs.codec import config_to_dict
from otbtf_qgis.core.jobs.configs.modelserve import OUTPUT_TYPES, ServeConfig, serve_config_from_text
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm, parameter_errors
from otbtf_qgis.processing.helptext import (
    EXTENT_HELP,
    LIST_GRAMMAR,
    LIST_HINT,
    MASK_HELP,
    NAMES_HINT,
    NODATA_HINT,
    OUTPUT_TYPE_HELP,
    SIZES_HINT,
)

#: Post-processors not called yet (see :meth:`ModelServeAlgorithm.name_loaded_layers`).
_WAITING: set[ClassMapAbove] = set()


def move_layer_above(root: QgsLayerTreeGroup, layer_id: str, anchor_id: str) -> bool:
    """Move the layer tree node of ``layer_id`` right above that of ``anchor_id`` (in the anchor's group).

    Returns:
        Whether both layers were found (then the layer is above the anchor).
    """
    node, anchor = root.findLayer(layer_id), root.findLayer(anchor_id)
    if node is None or anchor is None:
        return False
    parent = anchor.parent()
    siblings = [child.layerId() if isinstance(child, QgsLayerTreeLayer) else None for child in parent.children()]
    index = siblings.index(anchor_id)
    if node.parent() is parent and index > 0 and siblings[index - 1] == layer_id:
        return True
    clone = node.clone()
    node.parent().removeChildNode(node)
    siblings = [child.layerId() if isinstance(child, QgsLayerTreeLayer) else None for child in parent.children()]
    parent.insertChildNode(siblings.index(anchor_id), clone)
    return True


class ClassMapAbove(QgsProcessingLayerPostProcessorInterface):
    """Puts the loaded class map right above the loaded model outputs in the layer tree.

    QGIS loads the outputs of an algorithm in the order of their paths, on top of the
    tree or at the bottom of a results group: the order is the user's settings'. Each of
    the two layers gets one of these (the context owns and deletes them); they share
    ``loaded``, and the second one called moves the class map.
    """

    def __init__(self, role: str, loaded: dict[str, str]) -> None:
        super().__init__()
        self.role = role
        self.loaded = loaded

    def postProcessLayer(self, layer: QgsMapLayer, context: QgsProcessingContext,  # noqa: N802 - QGIS API
                         feedback: QgsProcessingFeedback) -> None:
        """Record the loaded layer; once both are loaded, move the class map above the outputs."""
        self.loaded[self.role] = layer.id()
        project = context.project()
        if len(self.loaded) == 2 and project is not None:
            move_layer_above(project.layerTreeRoot(), self.loaded["classes"], self.loaded["outputs"])
        _WAITING.discard(self)


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
        "class map is the argmax of the first output, with a palette and the model's class names; OUTPUT may be "
        "skipped when only the class map is wanted (the probabilities are then not written).\n\n"
        + EXTENT_HELP + "\n\n" + MASK_HELP + "\n\n" + OUTPUT_TYPE_HELP + "\n\n"
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
    EXTENT = "EXTENT"
    MASK = "MASK"
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
        self.addParameter(QgsProcessingParameterExtent(
            self.EXTENT, self.tr("Extent to serve (empty: the whole output grid)"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.MASK, self.tr("Mask polygons (serve only inside them)"), [QgsProcessing.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, self.tr("Output raster (model outputs; skip it for a class map only)"), optional=True))
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
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context) or ""
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
                extent=self._extent(parameters, context, layers[0].crs()),
                mask=self._mask(parameters, context, feedback),
                scheduler=self.parameterAsString(parameters, self.SCHEDULER, context),
            )

    def _extent(self, parameters: dict[str, Any], context: QgsProcessingContext,
                crs: QgsCoordinateReferenceSystem) -> tuple[float, ...]:
        """EXTENT in the first source's CRS as ``(xmin, ymin, xmax, ymax)``; ``()`` when left out."""
        if self.is_empty(parameters, self.EXTENT):
            return ()
        rectangle = self.parameterAsExtent(parameters, self.EXTENT, context, crs)
        if rectangle.isNull() or rectangle.isEmpty():
            raise QgsProcessingException(f"{self.EXTENT}: '{parameters[self.EXTENT]}' is not an extent "
                                         f"(xmin, xmax, ymin, ymax [CRS]) of the first source's CRS {crs.authid()}.")
        return (rectangle.xMinimum(), rectangle.yMinimum(), rectangle.xMaximum(), rectangle.yMaximum())

    def _mask(self, parameters: dict[str, Any], context: QgsProcessingContext,
              feedback: QgsProcessingFeedback | None) -> str:
        """A layer source the worker opens for MASK (``path|layername=x``); ``""`` when left out.

        A layer that is not a GeoPackage or shapefile, or with a filter or only its selected
        features, is written to a temporary GeoPackage by QGIS first.
        """
        if self.is_empty(parameters, self.MASK):
            return ""
        path, layer_name = self.parameterAsCompatibleSourceLayerPathAndLayerName(
            parameters, self.MASK, context, ["gpkg", "shp"], "gpkg", feedback)
        if not path:
            raise QgsProcessingException(f"{self.MASK}: '{parameters[self.MASK]}' is not a vector layer QGIS can open.")
        return f"{path}|layername={layer_name}" if layer_name else str(path)

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Build the serving config and run it in the worker."""
        config = self.build_config(parameters, context, feedback)
        written = [path for path in (config.output, config.output_classes) if path]
        result = self.run_job(self.NAME, config_to_dict(config), feedback, outputs=written)
        feedback.pushInfo(
            f"{result['width']}x{result['height']} pixels, {result['bands']} band(s) from "
            f"{', '.join(result['output_names'])}; {result['tiles']} tiles of "
            f"{result['tile_size'][0]}x{result['tile_size'][1]} ({result['skipped_tiles']} without a valid pixel, "
            f"not computed) in {result['seconds']:.1f} s")
        if "regions" in result:
            feedback.pushInfo(f"{result['regions']} regions on {result['workers']} Dask worker(s), "
                              f"{result['regions_reused']} reused from an earlier run")
        self.name_loaded_layers(context, config, result["output_names"])
        return {self.OUTPUT: config.output or None, self.OUTPUT_CLASSES: config.output_classes or None}

    def name_loaded_layers(self, context: QgsProcessingContext, config: ServeConfig, output_names: list[str]) -> None:
        """Name the layers QGIS loads after the run, and keep the class map above the model outputs.

        A layer is named after its file; a temporary output (whose file name says nothing)
        after the model and its outputs (``model: scores``, ``model: classes``).
        """
        temporary = Path(QgsProcessingUtils.tempFolder())
        model = Path(config.model).name
        names = {config.output: f"{model}: {', '.join(output_names)}", config.output_classes: f"{model}: classes"}
        loaded = [path for path in (config.output, config.output_classes)
                  if path and context.willLoadLayerOnCompletion(path)]
        for path in loaded:
            details = context.layerToLoadOnCompletionDetails(path)
            details.name = names[path] if temporary in Path(path).parents else Path(path).stem
            details.forceName = True
        if len(loaded) == 2:
            shared: dict[str, str] = {}
            for path, role in ((config.output, "outputs"), (config.output_classes, "classes")):
                post_processor = ClassMapAbove(role, shared)
                # The context deletes its post-processors (C++ owns them), but only a Python reference keeps
                # the Python part alive until QGIS calls it.
                sip.transferto(post_processor, None)
                _WAITING.add(post_processor)
                context.layerToLoadOnCompletionDetails(path).setPostProcessor(post_processor)
