"""``otbtf:patchesextraction``: the patches of one or more rasters at points, as patches-images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
)

from otbtf_qgis.core.config import config_to_dict
from otbtf_qgis.core.datafiles import MANIFEST_NAME
from otbtf_qgis.core.extraction_config import PatchesExtractionConfig
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm


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
        "PATCH_SIZES: one size for all sources or one per source, in order (64, 64x32 = x by y, or 64,32). "
        "SOURCE_NAMES: the dataset key of each source, comma-separated (default xs, xs2, xs3, ...). FIELD: an "
        "optional class field, written as labels.tif (1 × N, int32, key 'class'); text classes are numbered "
        "alphabetically (or as recorded by Patches selection) and the mapping is saved in manifest.json.\n\n"
        "A point is rejected when its patch leaves a source or holds that source's nodata (any band equal to "
        "it). NODATA: empty = each raster's own nodata, a value for all, 'none' to disable the check, or one "
        "token per source. The counts of kept and rejected points are reported and saved in the manifest.\n\n"
        "OUTPUT_DIR must be a new or empty folder, or a previous output of this algorithm (then replaced once "
        "the new output is complete); any other non-empty folder is refused."
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
        self.addParameter(QgsProcessingParameterString(self.PATCH_SIZES, self.tr("Patch sizes (64, 64x32, or one "
                                                                                  "per source: 64,32)"),
                                                       defaultValue="64"))
        self.addParameter(QgsProcessingParameterString(self.SOURCE_NAMES, self.tr("Source names (default xs, xs2, "
                                                                                   "...)"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(self.POINTS, self.tr("Points (patch centres)"),
                                                              [QgsProcessing.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterField(self.FIELD, self.tr("Class field"),
                                                      parentLayerParameterName=self.POINTS, optional=True))
        self.addParameter(QgsProcessingParameterString(self.NODATA, self.tr("Nodata (empty: each raster's own; a "
                                                                             "value, none, or one per source)"),
                                                       optional=True))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_DIR, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputNumber(self.N_SAMPLES, self.tr("Number of samples")))
        self.addOutput(QgsProcessingOutputFile(self.MANIFEST, self.tr("Manifest")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run the ``patchesextraction`` job in the worker."""
        sources = [layer.source() for layer in self.parameterAsLayerList(parameters, self.SOURCES, context)]
        points = self.parameterAsCompatibleSourceLayerPath(parameters, self.POINTS, context, ["gpkg", "shp"], "gpkg",
                                                           feedback)
        output_dir = self.parameterAsString(parameters, self.OUTPUT_DIR, context)
        config = PatchesExtractionConfig(
            sources=tuple(sources),
            points=points,
            output_dir=output_dir,
            patch_sizes=self.parameterAsString(parameters, self.PATCH_SIZES, context),
            source_names=self.parameterAsString(parameters, self.SOURCE_NAMES, context) or "",
            class_field=self.parameterAsString(parameters, self.FIELD, context) or "",
            nodata=self.parameterAsString(parameters, self.NODATA, context) or "",
        )
        result = self.run_job("patchesextraction", config_to_dict(config), feedback, outputs=[output_dir])
        return {self.OUTPUT_DIR: output_dir, self.N_SAMPLES: result.get("n_samples", 0),
                self.MANIFEST: str(Path(output_dir) / MANIFEST_NAME)}
