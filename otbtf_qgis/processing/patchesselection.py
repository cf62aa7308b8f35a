"""``otbtf:patchesselection``: patch positions on a grid over a raster, split train/valid/test."""

from __future__ import annotations

from typing import Any, get_args

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from otbtf_qgis.core.config import config_to_dict
from otbtf_qgis.core.sampling_config import PatchesSelectionConfig, Strategy
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm

STRATEGIES: list[str] = list(get_args(Strategy))


class PatchesSelectionAlgorithm(OtbtfAlgorithm):
    """Sample positions for patches, optionally inside labelled polygons."""

    NAME = "patchesselection"
    DISPLAY_NAME = "Patches selection"
    GROUP = "sampling"
    HELP = (
        "Places patch positions on a regular grid over INPUT (patch starts at OFFSET + k × STEP, default step = "
        "the patch size) and keeps those whose whole patch holds no nodata of INPUT (a pixel is nodata when any "
        "band equals its nodata value; NODATA overrides the raster's own) and no zero of MASK. Points sit at the "
        "patch centres: pixel centres for odd patch sizes, pixel corners for even ones, so Patches extraction "
        "with the same size gives back exactly these patches.\n\n"
        "Strategies: split (random train/valid/test by the proportions, reproducible with SEED), chessboard "
        "(train and valid on alternating grid cells), all (every position to OUTPUT_TRAIN).\n\n"
        "Sparse annotations: with POLYGONS, a position is kept only when its patch centre (the point) lies inside "
        "a polygon — the rest of the patch may be unlabelled — and CLASS_FIELD is copied to the points. "
        "OUTPUT_LABELS writes the polygons on INPUT's grid as a uint8 label raster (text classes numbered "
        "alphabetically from 0, integer classes keep their value, 255 = unlabelled; pixels whose centre is "
        "inside), with the class names and the ignore label 255 in its metadata. Extract it as a second source "
        "named 'labels' to train a fully-convolutional model on dense label patches.\n\n"
        "Every point has an 'id' field, unique over the three outputs."
    )

    INPUT = "INPUT"
    MASK = "MASK"
    NODATA = "NODATA"
    PATCH_SIZE = "PATCH_SIZE"
    STEP = "STEP"
    OFFSET = "OFFSET"
    STRATEGY = "STRATEGY"
    TRAIN_PROPORTION = "TRAIN_PROPORTION"
    VALID_PROPORTION = "VALID_PROPORTION"
    TEST_PROPORTION = "TEST_PROPORTION"
    SEED = "SEED"
    POLYGONS = "POLYGONS"
    CLASS_FIELD = "CLASS_FIELD"
    OUTPUT_TRAIN = "OUTPUT_TRAIN"
    OUTPUT_VALID = "OUTPUT_VALID"
    OUTPUT_TEST = "OUTPUT_TEST"
    OUTPUT_LABELS = "OUTPUT_LABELS"
    N_TRAIN = "N_TRAIN"
    N_VALID = "N_VALID"
    N_TEST = "N_TEST"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API name
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Reference raster")))
        self.addParameter(QgsProcessingParameterString(self.PATCH_SIZE, self.tr("Patch size (64, or 64x32 = x by y)"),
                                                       defaultValue="64"))
        self.addParameter(QgsProcessingParameterString(self.STEP, self.tr("Grid step in pixels (empty: the patch "
                                                                          "size; 32 or 32x16)"), optional=True))
        self.addParameter(QgsProcessingParameterString(self.OFFSET, self.tr("Grid offset in pixels (0, or 5x3)"),
                                                       defaultValue="0", optional=True))
        self.addParameter(QgsProcessingParameterEnum(self.STRATEGY, self.tr("Strategy"), options=STRATEGIES,
                                                     defaultValue="split", usesStaticStrings=True))
        for name, label, default in ((self.TRAIN_PROPORTION, "Train proportion (split)", 0.6),
                                     (self.VALID_PROPORTION, "Validation proportion (split)", 0.2),
                                     (self.TEST_PROPORTION, "Test proportion (split)", 0.2)):
            self.addParameter(QgsProcessingParameterNumber(name, self.tr(label), QgsProcessingParameterNumber.Double,
                                                           defaultValue=default, minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber(self.SEED, self.tr("Random seed"),
                                                       QgsProcessingParameterNumber.Integer, defaultValue=0))
        self.addParameter(QgsProcessingParameterRasterLayer(self.MASK, self.tr("Mask (0 = excluded)"),
                                                            optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.NODATA, self.tr("Nodata value of the reference "
                                                                            "(empty: the raster's own)"),
                                                       QgsProcessingParameterNumber.Double, optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(self.POLYGONS, self.tr("Labelled polygons"),
                                                              [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterField(self.CLASS_FIELD, self.tr("Class field of the polygons"),
                                                      parentLayerParameterName=self.POLYGONS, optional=True))
        self.addParameter(QgsProcessingParameterVectorDestination(self.OUTPUT_TRAIN, self.tr("Training points"),
                                                                  QgsProcessing.TypeVectorPoint))
        self.addParameter(QgsProcessingParameterVectorDestination(self.OUTPUT_VALID, self.tr("Validation points"),
                                                                  QgsProcessing.TypeVectorPoint, optional=True,
                                                                  createByDefault=True))
        self.addParameter(QgsProcessingParameterVectorDestination(self.OUTPUT_TEST, self.tr("Test points"),
                                                                  QgsProcessing.TypeVectorPoint, optional=True,
                                                                  createByDefault=True))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT_LABELS, self.tr("Label raster"),
                                                                  optional=True, createByDefault=False))
        for key, label in ((self.N_TRAIN, "Training positions"), (self.N_VALID, "Validation positions"),
                           (self.N_TEST, "Test positions")):
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run the ``patchesselection`` job in the worker."""
        raster = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        mask = self.parameterAsRasterLayer(parameters, self.MASK, context)
        polygons = ""
        if parameters.get(self.POLYGONS) is not None:
            polygons = self.parameterAsCompatibleSourceLayerPath(parameters, self.POLYGONS, context, ["gpkg", "shp"],
                                                                 "gpkg", feedback)
        nodata = parameters.get(self.NODATA)
        outputs = {name: self.parameterAsOutputLayer(parameters, name, context) or ""
                   for name in (self.OUTPUT_TRAIN, self.OUTPUT_VALID, self.OUTPUT_TEST, self.OUTPUT_LABELS)}
        config = PatchesSelectionConfig(
            input=raster.source() if raster is not None else "",
            output_train=outputs[self.OUTPUT_TRAIN],
            patch_size=self.parameterAsString(parameters, self.PATCH_SIZE, context),
            step=self.parameterAsString(parameters, self.STEP, context) or "",
            offset=self.parameterAsString(parameters, self.OFFSET, context) or "0",
            strategy=self.parameterAsEnumString(parameters, self.STRATEGY, context),
            train_proportion=self.parameterAsDouble(parameters, self.TRAIN_PROPORTION, context),
            valid_proportion=self.parameterAsDouble(parameters, self.VALID_PROPORTION, context),
            test_proportion=self.parameterAsDouble(parameters, self.TEST_PROPORTION, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            mask=mask.source() if mask is not None else "",
            nodata=None if nodata in (None, "") else self.parameterAsDouble(parameters, self.NODATA, context),
            polygons=polygons,
            class_field=self.parameterAsString(parameters, self.CLASS_FIELD, context) or "",
            output_valid=outputs[self.OUTPUT_VALID],
            output_test=outputs[self.OUTPUT_TEST],
            output_labels=outputs[self.OUTPUT_LABELS],
        )
        result = self.run_job("patchesselection", config_to_dict(config), feedback,
                              outputs=[path for path in outputs.values() if path])
        written = result.get("outputs", {})
        counts = result.get("counts", {})
        return {
            self.OUTPUT_TRAIN: written.get("train"),
            self.OUTPUT_VALID: written.get("valid"),
            self.OUTPUT_TEST: written.get("test"),
            self.OUTPUT_LABELS: written.get("labels"),
            self.N_TRAIN: counts.get("train", 0),
            self.N_VALID: counts.get("valid", 0),
            self.N_TEST: counts.get("test", 0),
        }
