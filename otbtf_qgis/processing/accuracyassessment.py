"""``otbtf:accuracyassessment``: a class map against reference data, as remote-sensing reports need it."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from otbtf_qgis.core.jobs.codec import config_to_dict
from otbtf_qgis.core.jobs.configs.accuracyassessment import AccuracyAssessmentConfig
from otbtf_qgis.core.jobs.params import list_items
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm, parameter_errors


class AccuracyAssessmentAlgorithm(OtbtfAlgorithm):
    """Confusion matrix, accuracies with confidence intervals, kappa, F1 and area estimates of a class map."""

    NAME = "accuracyassessment"
    DISPLAY_NAME = "Accuracy assessment"
    GROUP = "validation"
    HELP = (
        "Compares a class map (INPUT: a single-band integer raster of class codes, such as the class map of Model "
        "serve) with reference data and reports the confusion matrix (rows: the map's classes, columns: the "
        "reference's), the overall accuracy with its 95 % confidence interval, kappa, the user's accuracy "
        "(precision), producer's accuracy (recall) and F1 of each class, and the area of each class estimated "
        "with its 95 % interval by the stratified estimator of Olofsson et al. (2014), the map classes as strata.\n\n"
        "Reference: either REFERENCE, polygons or points in any CRS, with CLASS_FIELD holding class names (matched "
        "to the map's names without case) or integer codes; or REFERENCE_RASTER, a label raster on the map's grid "
        "(its nodata and 255: no reference). A polygon's pixels are those whose centre is inside it; a point takes "
        "the pixel it falls in. With SPLIT_FIELD, only the features whose field equals SPLIT_VALUE (default 'test') "
        "count.\n\n"
        "Class names come from the map (GDAL category names of band 1); CLASS_NAMES (the names of codes 0, 1, 2…, "
        "separated by commas) replaces them. Reference pixels on the map's nodata (NODATA overrides the map's own), "
        "features outside the map, polygons covering no pixel centre and reference classes the map does not have "
        "are left out and counted in the report.\n\n"
        "The interval of the overall accuracy counts each polygon or point as one sampling unit, since the pixels "
        "of a polygon are not independent; the area intervals are computed per pixel, as the formula asks: exact "
        "for a probability sample of points, too narrow for polygons.")

    INPUT = "INPUT"
    REFERENCE = "REFERENCE"
    CLASS_FIELD = "CLASS_FIELD"
    REFERENCE_RASTER = "REFERENCE_RASTER"
    SPLIT_FIELD = "SPLIT_FIELD"
    SPLIT_VALUE = "SPLIT_VALUE"
    NODATA = "NODATA"
    CLASS_NAMES = "CLASS_NAMES"
    OUTPUT_MATRIX = "OUTPUT_MATRIX"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OUTPUT_CLASS_TABLE = "OUTPUT_CLASS_TABLE"
    OVERALL_ACCURACY = "OVERALL_ACCURACY"
    OVERALL_ACCURACY_LOW = "OVERALL_ACCURACY_LOW"
    OVERALL_ACCURACY_HIGH = "OVERALL_ACCURACY_HIGH"
    KAPPA = "KAPPA"
    MEAN_F1 = "MEAN_F1"
    MIN_F1 = "MIN_F1"
    CLASS_METRICS = "CLASS_METRICS"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API name
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Class map")))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.REFERENCE, self.tr("Reference polygons or points"),
            [QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeVectorPoint], optional=True))
        self.addParameter(QgsProcessingParameterField(
            self.CLASS_FIELD, self.tr("Class field of the reference (class names or codes)"),
            parentLayerParameterName=self.REFERENCE, optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.REFERENCE_RASTER, self.tr("Or: reference raster on the map's grid (nodata and 255: no reference)"),
            optional=True))
        self.addParameter(QgsProcessingParameterField(
            self.SPLIT_FIELD, self.tr("Split field of the reference (only features equal to the split value)"),
            parentLayerParameterName=self.REFERENCE, optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.SPLIT_VALUE, self.tr("Split value"), defaultValue="test", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_MATRIX, self.tr("Confusion matrix"), "CSV files (*.csv)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, self.tr("Report"), "HTML files (*.html)", optional=True, createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_CLASS_TABLE, self.tr("Per-class table"), "CSV files (*.csv)", optional=True,
            createByDefault=False))
        advanced = [
            QgsProcessingParameterString(
                self.CLASS_NAMES, self.tr("Class names of the codes 0, 1, 2… (empty: the map's own)"),
                defaultValue="", optional=True),
            QgsProcessingParameterNumber(
                self.NODATA, self.tr("Nodata value of the map (empty: the raster's own)"),
                QgsProcessingParameterNumber.Double, optional=True),
        ]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)
        for key, label in ((self.OVERALL_ACCURACY, "Overall accuracy"),
                           (self.OVERALL_ACCURACY_LOW, "Overall accuracy, 95 % interval low"),
                           (self.OVERALL_ACCURACY_HIGH, "Overall accuracy, 95 % interval high"),
                           (self.KAPPA, "Kappa"), (self.MEAN_F1, "Mean F1 of the classes"),
                           (self.MIN_F1, "Lowest F1 of the classes")):
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))
        self.addOutput(QgsProcessingOutputString(self.CLASS_METRICS, self.tr("Per-class UA, PA and F1 (JSON)")))

    def build_config(self, parameters: dict[str, Any], context: QgsProcessingContext,
                     feedback: QgsProcessingFeedback | None) -> AccuracyAssessmentConfig:
        """The job's config from the algorithm's parameters.

        Raises:
            QgsProcessingException: a parameter is missing or inconsistent (naming it).
        """
        with parameter_errors():
            return AccuracyAssessmentConfig(
                input=self.raster_path(parameters, self.INPUT, context),
                output_matrix=self.parameterAsFileOutput(parameters, self.OUTPUT_MATRIX, context) or "",
                reference=self.vector_path(parameters, self.REFERENCE, context, feedback),
                class_field=self.parameterAsString(parameters, self.CLASS_FIELD, context) or "",
                reference_raster=self.raster_path(parameters, self.REFERENCE_RASTER, context),
                split_field=self.parameterAsString(parameters, self.SPLIT_FIELD, context) or "",
                split_value=self.parameterAsString(parameters, self.SPLIT_VALUE, context),
                nodata=self.optional_double(parameters, self.NODATA, context),
                class_names=tuple(list_items(self.parameterAsString(parameters, self.CLASS_NAMES, context) or "")),
                output_report=self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or "",
                output_class_table=self.parameterAsFileOutput(parameters, self.OUTPUT_CLASS_TABLE, context) or "",
            )

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run the ``accuracyassessment`` job in the worker."""
        config = self.build_config(parameters, context, feedback)
        files = [config.output_matrix, config.output_report, config.output_class_table]
        result = self.run_job(self.NAME, config_to_dict(config), feedback,
                              outputs=[path for path in files if path])
        written = result.get("outputs", {})
        return {
            self.OUTPUT_MATRIX: written.get("matrix"),
            self.OUTPUT_REPORT: written.get("report"),
            self.OUTPUT_CLASS_TABLE: written.get("class_table"),
            self.OVERALL_ACCURACY: result.get("overall_accuracy"),
            self.OVERALL_ACCURACY_LOW: result.get("overall_accuracy_low"),
            self.OVERALL_ACCURACY_HIGH: result.get("overall_accuracy_high"),
            self.KAPPA: result.get("kappa"),
            self.MEAN_F1: result.get("mean_f1"),
            self.MIN_F1: result.get("min_f1"),
            self.CLASS_METRICS: json.dumps(result.get("class_metrics", {})),
        }
