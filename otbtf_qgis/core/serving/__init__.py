"""Serving: a SavedModel applied over whole rasters, tile by tile, cropped (``otbtf:modelserve``).

- :mod:`~otbtf_qgis.core.serving.geometry` — receptive/expression fields, output grid,
  input windows, tile sizes (pure functions);
- :mod:`~otbtf_qgis.core.serving.plan` — a config resolved against its rasters and model;
- :mod:`~otbtf_qgis.core.serving.stream` — the reader, model and writer threads over the tiles;
- :mod:`~otbtf_qgis.core.serving.output` — output writers, class palettes, region mosaics;
- :mod:`~otbtf_qgis.core.serving.mask` — the MASK polygons rasterized onto the output grid;
- :mod:`~otbtf_qgis.core.serving.modelserve` — the job: :func:`serve`, :func:`serve_region`;
- :mod:`~otbtf_qgis.core.serving.regions` — regions of whole tiles, their files, fingerprint and mosaic;
- :mod:`~otbtf_qgis.core.serving.distributed` — the regions as Dask tasks: :func:`serve_distributed`.

The config, :class:`ServeConfig`, lives with the other job configs
(:mod:`otbtf_qgis.core.jobs.configs.modelserve`) and is re-exported here.
"""

from __future__ import annotations

from otbtf_qgis.core.lazy import lazy_exports

_EXPORTS = {
    "ServeConfig": "otbtf_qgis.core.jobs.configs.modelserve",
    "SourceConfig": "otbtf_qgis.core.jobs.configs.modelserve",
    "prepare": "otbtf_qgis.core.serving.plan",
    "ServingPlan": "otbtf_qgis.core.serving.plan",
    "serve": "otbtf_qgis.core.serving.modelserve",
    "serve_region": "otbtf_qgis.core.serving.modelserve",
    "write_mosaic_vrt": "otbtf_qgis.core.serving.output",
    "serve_distributed": "otbtf_qgis.core.serving.distributed",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
