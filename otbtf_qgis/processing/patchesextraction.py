"""``otbtf:patchesextraction``: the patches of one or more rasters at points, as patches-images."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
)

from otbtf_qgis.core.jobs.codec import config_to_dict
from otbtf_qgis.core.jobs.configs.patchesextraction import PatchesExtractionConfig
from otbtf_qgis.core.jobs.params import parse_nodata, parse_sizes, per_source
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm, parameter_errors
from otbtf_qgis.processing.helptext import LIST_GRAMMAR, NAMES_HINT, NODATA_HINT, SIZES_HINT


class PatchesExtractionAlgorithm(OtbtfAlgorithm):
    """Extract patches of every source around every point."""

    NAME = "patchesextraction"
    DISPLAY_NAME = "Patches extraction"
    GROUP = "sampling"
    HELP = (
        "For every point of POINTS and every raster of SOURCES, cuts the patch around the point (its pixel minus "
        "half the patch size, as OTBTF) and stacks the patches of each source into OUTPUT_DIR/<name>_patches.tif "
        "(patch i = rows i×y to (i+1)×y). Points are reprojected to each source's CRS; sources may have different "
        "resolutions, band counts and data types.\n\n"
        "PATCH_SIZES (sizes), SOURCE_NAMES (the dataset key of each source; default xs, xs2, xs3, ...) and NODATA "
        "are per-source lists. FIELD: an optional class field, written as labels.tif (1 × N, int32, key 'class'); "
        "text classes are numbered alphabetically (or as recorded by Patches selection) and the mapping is saved "
        "in manifest.json.\n\n"
        "A point is rejected when its patch leaves a source or holds that source's nodata (any band equal to it); "
        "a NODATA entry none disables the check for its source. The counts of kept and rejected points are "
        "reported and saved in the manifest.\n\n"
        "OUTPUT_DIR must be a new or empty folder, or a previous output of this algorithm (then replaced once "
        "the new output is complete); any other non-empty folder is refused.\n\n"
        + LIST_GRAMMAR
    )

    SOURCES = "SOURCES"
    PATCH_SIZES = "PATCH_SIZES"
    SOURCE_NAMES = "SOURCE_NAMES"
    POINTS = "POINTS"
    FIELD = "FIELD"
    NODATA = "NODATA"
    OUTPUT_DIR = "OUTPUT_DIR"
    N_SAMPLES = "N_SAMPLES"
    MANIFEST = "MANIFEST"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API name
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterMultipleLayers(self.SOURCES, self.tr("Source rasters"),
                                                               QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterString(self.PATCH_SIZES, self.tr(f"Patch sizes ({SIZES_HINT})"),
                                                       defaultValue="64"))
        self.addParameter(QgsProcessingParameterString(
            self.SOURCE_NAMES, self.tr(f"Source names ({NAMES_HINT}; empty: xs, xs2, ...)"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(self.POINTS, self.tr("Points (patch centres)"),
                                                              [QgsProcessing.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterField(self.FIELD, self.tr("Class field"),
                                                      parentLayerParameterName=self.POINTS, optional=True))
        self.addParameter(QgsProcessingParameterString(self.NODATA, self.tr(f"Nodata ({NODATA_HINT})"),
                                                       optional=True))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_DIR, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputNumber(self.N_SAMPLES, self.tr("Number of samples")))
        self.addOutput(QgsProcessingOutputFile(self.MANIFEST, self.tr("Manifest")))

    def build_config(self, parameters: dict[str, Any], context: QgsProcessingContext,
                     feedback: QgsProcessingFeedback | None) -> PatchesExtractionConfig:
        """The ``patchesextraction`` job's config (see :meth:`OtbtfAlgorithm.build_config`)."""
        sources = tuple(str(layer.source()) for layer in self.parameterAsLayerList(parameters, self.SOURCES, context))
        if not sources:
            raise QgsProcessingException(f"{self.SOURCES}: give at least one raster.")
        patch_sizes = self.parameterAsString(parameters, self.PATCH_SIZES, context)
        source_names = self.parameterAsString(parameters, self.SOURCE_NAMES, context) or ""
        nodata = self.parameterAsString(parameters, self.NODATA, context) or ""
        with parameter_errors():
            parse_sizes(patch_sizes, len(sources), self.PATCH_SIZES)
            per_source(source_names, len(sources), self.SOURCE_NAMES, repeat=False)
            for entry in per_source(nodata, len(sources), self.NODATA):
                parse_nodata(entry, self.NODATA)
        return PatchesExtractionConfig(
            sources=sources,
            points=self.vector_path(parameters, self.POINTS, context, feedback),
            output_dir=self.parameterAsFileOutput(parameters, self.OUTPUT_DIR, context),
            patch_sizes=patch_sizes,
            source_names=source_names,
            class_field=self.parameterAsString(parameters, self.FIELD, context) or "",
            nodata=nodata,
        )

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run the ``patchesextraction`` job in the worker."""
        config = self.build_config(parameters, context, feedback)
        result = self.run_job(self.NAME, config_to_dict(config), feedback, outputs=[config.output_dir])
        return {self.OUTPUT_DIR: config.output_dir, self.N_SAMPLES: result.get("n_samples", 0),
                self.MANIFEST: result.get("manifest", "")}
