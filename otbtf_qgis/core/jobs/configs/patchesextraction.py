"""Settings of the ``patchesextraction`` job (numpy- and GDAL-free, shared by Processing, the CLI and Python).

The job itself is :func:`otbtf_qgis.core.data.patchesextraction.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from otbtf_qgis.core.jobs.params import RasterInput


@dataclass(frozen=True)
class PatchesExtractionConfig:
    """Settings of patches extraction (see :mod:`otbtf_qgis.core.data.patchesextraction`)."""

    sources: tuple[RasterInput, ...] = field(metadata={
        "param": "SOURCES", "help": "rasters to extract patches from (from Python: paths or pyotb objects)"})
    points: str = field(metadata={"param": "POINTS", "help": "point layer (patch centres)"})
    output_dir: str = field(metadata={"param": "OUTPUT_DIR", "help": "output folder (patches-images and manifest)"})
    patch_sizes: str = field(default="64", metadata={
        "param": "PATCH_SIZES", "help": "one size for all sources or one per source: 64, 64x32, or 64,32"})
    source_names: str = field(default="", metadata={
        "param": "SOURCE_NAMES", "help": "comma-separated names of the sources (default xs, xs2, xs3, ...)"})
    class_field: str = field(default="", metadata={"param": "FIELD", "help": "optional class field of POINTS"})
    nodata: str = field(default="", metadata={
        "param": "NODATA", "help": "nodata per source: empty = each raster's own, a value, none, or one per source"})
