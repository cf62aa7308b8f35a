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

from otbtf_qgis.core.jobs.codec import config_to_dict
from otbtf_qgis.core.jobs.configs.patchesselection import PatchesSelectionConfig, Strategy
from otbtf_qgis.core.jobs.params import parse_size
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm, parameter_errors
from otbtf_qgis.processing.helptext import SIZE_GRAMMAR

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
        "Strategies: polygons (whole POLYGONS go to train, valid or test by the proportions, stratified per class "
        "and reproducible with SEED, or as the polygons' SPLIT_FIELD says: train, valid or test; no validation or "
        "test position then shares a polygon with a training one, so validation figures measure the map), split "
        "(random positions by the proportions: the positions of one polygon land in every set, so validation "
        "measures memory), chessboard (train and valid on alternating grid cells), balanced (chessboard, then the "
        "same number of positions of each class: the class of its polygon, or the most frequent label of its "
        "patch in the label raster LABELS), all (every position to OUTPUT_TRAIN). MAX_PER_CLASS caps the "
        "positions of each class in each set (drawn at random), so that big classes do not drown small ones.\n\n"
        "Sparse annotations: with POLYGONS, a position is kept only when its patch centre (the point) lies inside "
        "a polygon — the rest of the patch may be unlabelled — and CLASS_FIELD is copied to the points. "
        "OUTPUT_LABELS writes the polygons on INPUT's grid as a uint8 label raster (text classes numbered "
        "alphabetically from 0, integer classes keep their value, 255 = unlabelled; pixels whose centre is "
        "inside), with the class names and the ignore label 255 in its metadata. Extract it as a second source "
        "named 'labels' to train a fully-convolutional model on dense label patches. With the polygons strategy "
        "OUTPUT_LABELS holds the training polygons only, and OUTPUT_VALID_LABELS and OUTPUT_TEST_LABELS those of "
        "the other sets, so that no training patch carries the labels of a validation or test polygon. "
        "OUTPUT_POLYGONS is the polygons with their set in a field 'split' (for Accuracy assessment on the test "
        "polygons).\n\n"
        "Every point has an 'id' field, unique over the three outputs.\n\n"
        "PATCH_SIZE, STEP and OFFSET are sizes in pixels. " + SIZE_GRAMMAR
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
    SPLIT_FIELD = "SPLIT_FIELD"
    MAX_PER_CLASS = "MAX_PER_CLASS"
    LABELS = "LABELS"
    OUTPUT_VALID_LABELS = "OUTPUT_VALID_LABELS"
    OUTPUT_TEST_LABELS = "OUTPUT_TEST_LABELS"
    OUTPUT_POLYGONS = "OUTPUT_POLYGONS"
    N_TRAIN = "N_TRAIN"
    N_VALID = "N_VALID"
    N_TEST = "N_TEST"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API name
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Reference raster")))
        self.addParameter(QgsProcessingParameterString(self.PATCH_SIZE, self.tr("Patch size (64 or 64x32)"),
                                                       defaultValue="64"))
        self.addParameter(QgsProcessingParameterString(self.STEP, self.tr("Grid step in pixels (32 or 32x16; empty: "
                                                                          "the patch size)"), optional=True))
        self.addParameter(QgsProcessingParameterString(self.OFFSET, self.tr("Grid offset in pixels (0 or 5x3)"),
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
        self.addParameter(QgsProcessingParameterField(self.SPLIT_FIELD, self.tr("Split field of the polygons (train, "
                                                                                "valid or test; polygons strategy)"),
                                                      parentLayerParameterName=self.POLYGONS, optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.MAX_PER_CLASS, self.tr("Maximum positions per class and "
                                                                                   "set (0: no cap)"),
                                                       QgsProcessingParameterNumber.Integer, defaultValue=0,
                                                       minValue=0))
        self.addParameter(QgsProcessingParameterRasterLayer(self.LABELS, self.tr("Label raster (balanced strategy)"),
                                                            optional=True))
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
        for name, label in ((self.OUTPUT_VALID_LABELS, "Validation label raster (polygons strategy)"),
                            (self.OUTPUT_TEST_LABELS, "Test label raster (polygons strategy)")):
            self.addParameter(QgsProcessingParameterRasterDestination(name, self.tr(label), optional=True,
                                                                      createByDefault=False))
        self.addParameter(QgsProcessingParameterVectorDestination(self.OUTPUT_POLYGONS,
                                                                  self.tr("Polygons with their set"),
                                                                  QgsProcessing.TypeVectorPolygon, optional=True,
                                                                  createByDefault=False))
        for key, label in ((self.N_TRAIN, "Training positions"), (self.N_VALID, "Validation positions"),
                           (self.N_TEST, "Test positions")):
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    def build_config(self, parameters: dict[str, Any], context: QgsProcessingContext,
                     feedback: QgsProcessingFeedback | None) -> PatchesSelectionConfig:
        """The ``patchesselection`` job's config (see :meth:`OtbtfAlgorithm.build_config`)."""
        outputs = {name: self.parameterAsOutputLayer(parameters, name, context) or ""
                   for name in (self.OUTPUT_TRAIN, self.OUTPUT_VALID, self.OUTPUT_TEST, self.OUTPUT_LABELS,
                                self.OUTPUT_VALID_LABELS, self.OUTPUT_TEST_LABELS, self.OUTPUT_POLYGONS)}
        patch_size = self.parameterAsString(parameters, self.PATCH_SIZE, context)
        step = self.parameterAsString(parameters, self.STEP, context) or ""
        offset = self.parameterAsString(parameters, self.OFFSET, context) or "0"
        with parameter_errors():
            parse_size(patch_size, self.PATCH_SIZE)
            if step.strip():
                parse_size(step, self.STEP)
            if offset.strip():
                parse_size(offset, self.OFFSET, minimum=0)
        return PatchesSelectionConfig(
            input=self.raster_path(parameters, self.INPUT, context),
            output_train=outputs[self.OUTPUT_TRAIN],
            patch_size=patch_size,
            step=step,
            offset=offset,
            strategy=self.parameterAsEnumString(parameters, self.STRATEGY, context),
            train_proportion=self.parameterAsDouble(parameters, self.TRAIN_PROPORTION, context),
            valid_proportion=self.parameterAsDouble(parameters, self.VALID_PROPORTION, context),
            test_proportion=self.parameterAsDouble(parameters, self.TEST_PROPORTION, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            mask=self.raster_path(parameters, self.MASK, context),
            nodata=self.optional_double(parameters, self.NODATA, context),
            polygons=self.vector_path(parameters, self.POLYGONS, context, feedback),
            class_field=self.parameterAsString(parameters, self.CLASS_FIELD, context) or "",
            output_valid=outputs[self.OUTPUT_VALID],
            output_test=outputs[self.OUTPUT_TEST],
            output_labels=outputs[self.OUTPUT_LABELS],
            split_field=self.parameterAsString(parameters, self.SPLIT_FIELD, context) or "",
            max_per_class=self.parameterAsInt(parameters, self.MAX_PER_CLASS, context),
            labels=self.raster_path(parameters, self.LABELS, context),
            output_valid_labels=outputs[self.OUTPUT_VALID_LABELS],
            output_test_labels=outputs[self.OUTPUT_TEST_LABELS],
            output_polygons=outputs[self.OUTPUT_POLYGONS],
        )

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run the ``patchesselection`` job in the worker."""
        config = self.build_config(parameters, context, feedback)
        outputs = (config.output_train, config.output_valid, config.output_test, config.output_labels,
                   config.output_valid_labels, config.output_test_labels, config.output_polygons)
        result = self.run_job(self.NAME, config_to_dict(config), feedback, outputs=[path for path in outputs if path])
        written = result.get("outputs", {})
        counts = result.get("counts", {})
        return {
            self.OUTPUT_TRAIN: written.get("train"),
            self.OUTPUT_VALID: written.get("valid"),
            self.OUTPUT_TEST: written.get("test"),
            self.OUTPUT_LABELS: written.get("labels"),
            self.OUTPUT_VALID_LABELS: written.get("valid_labels"),
            self.OUTPUT_TEST_LABELS: written.get("test_labels"),
            self.OUTPUT_POLYGONS: written.get("polygons"),
            self.N_TRAIN: counts.get("train", 0),
            self.N_VALID: counts.get("valid", 0),
            self.N_TEST: counts.get("test", 0),
        }
