"""Input and output: pixel windows, rasters, vectors, striped TIFFs and pyotb inputs.

- :mod:`~otbtf_qgis.core.io.windows` — pixel windows as pure integer functions (no GDAL);
- :mod:`~otbtf_qgis.core.io.raster` — reading windows that may leave the image, nodata
  masks, tiled compressed GeoTIFFs written window by window and published atomically;
- :mod:`~otbtf_qgis.core.io.striped_tiff` — the fast writer of patches-images;
- :mod:`~otbtf_qgis.core.io.vector` — points and polygons in and out (OGR);
- :mod:`~otbtf_qgis.core.io.pyotb_inputs` — pyotb pipelines as raster inputs.
"""

from __future__ import annotations

from otbtf_qgis.core.lazy import lazy_exports

_EXPORTS = {
    "Window": "otbtf_qgis.core.io.windows",
    "GeoTiffWriter": "otbtf_qgis.core.io.raster",
    "RasterInfo": "otbtf_qgis.core.io.raster",
    "open_raster": "otbtf_qgis.core.io.raster",
    "raster_info": "otbtf_qgis.core.io.raster",
    "read_window": "otbtf_qgis.core.io.raster",
    "nodata_mask": "otbtf_qgis.core.io.raster",
    "read_points": "otbtf_qgis.core.io.vector",
    "read_polygons": "otbtf_qgis.core.io.vector",
    "write_points": "otbtf_qgis.core.io.vector",
    "as_pyotb_input": "otbtf_qgis.core.io.pyotb_inputs",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
