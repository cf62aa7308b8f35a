"""The ``modelserve`` job: a SavedModel applied over whole rasters, tile by tile, cropped.

:func:`serve` writes the whole output grid; :func:`serve_region` any rectangular region
of it into its own file, with the pixels of the whole run (region files mosaic through
:func:`~otbtf_qgis.core.serving.output.write_mosaic_vrt`). Both prepare a plan
(:mod:`~otbtf_qgis.core.serving.plan`) and stream it (:mod:`~otbtf_qgis.core.serving.stream`).
"""

from __future__ import annotations

import os
from typing import Any

from otbtf_qgis.core.io.windows import Window
from otbtf_qgis.core.jobs.configs.modelserve import ServeConfig
from otbtf_qgis.core.models.saved_model import configure_threads
from otbtf_qgis.core.progress import NullReporter, Reporter
from otbtf_qgis.core.serving.plan import check_class_map, prepare
from otbtf_qgis.core.serving.stream import serve_plan


def serve(config: ServeConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Serve the output grid (or its part covering ``config.extent``) into ``config.output`` and/or the class map.

    With ``config.scheduler`` set, the regions are computed on a Dask cluster
    (:func:`~otbtf_qgis.core.serving.distributed.serve_distributed`), same outputs.

    Returns:
        The summary of :func:`~otbtf_qgis.core.serving.stream.serve_plan`.
    """
    if config.scheduler:
        from otbtf_qgis.core.serving.distributed import serve_distributed

        return serve_distributed(config, reporter)
    return serve_region(config, None, config.output, reporter, config.output_classes)


def serve_region(config: ServeConfig, window: Window | None, output: str | os.PathLike[str],
                 reporter: Reporter | None = None, output_classes: str = "") -> dict[str, Any]:
    """Serve one region of the output grid (``None``: all of it, or EXTENT's part) into its own file.

    The region's pixels are those of the whole run, bit for bit: the same tiles are
    computed. Region files mosaicked with
    :func:`~otbtf_qgis.core.serving.output.write_mosaic_vrt` equal the single-file output.
    """
    reporter = reporter or NullReporter()
    with prepare(config, reporter.sub(0.0, 0.05)) as plan:
        if output_classes:
            check_class_map(plan)
        return serve_plan(plan, output, window, output_classes, reporter.sub(0.05, 1.0))


def run(config: ServeConfig, reporter: Reporter) -> dict[str, Any]:
    """The ``modelserve`` worker command: :func:`serve`, TensorFlow set to compute tiles concurrently.

    With a scheduler, this process only dispatches regions and mosaics them: the Dask
    workers run TensorFlow, each on its share of the cores.
    """
    if not config.scheduler:
        configure_threads()
    return serve(config, reporter)
