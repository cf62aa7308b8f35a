"""Serving: apply a SavedModel over whole rasters, tile by tile, cropped (``otbtf:modelserve``).

- :mod:`~otbtf_qgis.core.serving.config` — :class:`ServeConfig`, :class:`SourceConfig` (no TensorFlow).
- :mod:`~otbtf_qgis.core.serving.geometry` — receptive/expression fields, output grid, input windows.
- :mod:`~otbtf_qgis.core.serving.model` — SavedModel loading and signature inspection.
- :mod:`~otbtf_qgis.core.serving.engine` — the streaming pipeline: :func:`serve`, :func:`serve_region`.

This package imports neither TensorFlow nor the engine at import time, so Processing can
use its config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otbtf_qgis.core.serving.config import ServeConfig, SourceConfig

if TYPE_CHECKING:
    from otbtf_qgis.core.progress import Reporter
    from otbtf_qgis.core.windows import Window

__all__ = ["ServeConfig", "SourceConfig", "serve", "serve_region"]


def serve(config: ServeConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Serve the whole output grid into ``config.output`` (see :func:`otbtf_qgis.core.serving.engine.serve`)."""
    from otbtf_qgis.core.serving.engine import serve as serve_all

    return serve_all(config, reporter)


def serve_region(config: ServeConfig, window: Window, output: str, reporter: Reporter | None = None,
                 output_classes: str = "") -> dict[str, Any]:
    """Serve one region of the output grid into ``output`` (see :func:`otbtf_qgis.core.serving.engine.serve_region`)."""
    from otbtf_qgis.core.serving.engine import serve_region as serve_one

    return serve_one(config, window, output, reporter, output_classes)
