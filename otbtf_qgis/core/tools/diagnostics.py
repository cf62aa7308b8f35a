"""The ``diagnostics`` job: exercises the worker protocol without TensorFlow.

It reports progress over ``steps`` steps of ``step_seconds``, optionally writing a
small GeoTIFF atomically (so cancel and crash handling can be checked on a real output),
and can end in a chosen failure: a structured error, an unexpected exception, a hard
crash (``SIGSEGV``), or a non-zero exit. ``unresponsive`` ignores ``SIGTERM`` from the
start, so that only ``SIGKILL`` stops it during a step (the last resort of a cancel).
Used by the test suite and handy to check a worker interpreter from the Processing
settings.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.io.raster import GeoTiffWriter
from otbtf_qgis.core.io.windows import Window
from otbtf_qgis.core.jobs.configs.diagnostics import DiagnosticsConfig
from otbtf_qgis.core.progress import Reporter


def run(config: DiagnosticsConfig, reporter: Reporter) -> dict[str, Any]:
    """Run the diagnostics job (see module docstring)."""
    if config.steps < 1:
        raise InputError(f"must be at least 1, got {config.steps}.", "STEPS")
    if config.fail == "unresponsive":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    writer = GeoTiffWriter(config.output, 8, config.steps, 1, np.uint8, (0, 1, 0, 0, 0, -1)) if config.output else None
    try:
        for step in range(config.steps):
            reporter.check_canceled()
            time.sleep(config.step_seconds)
            if writer is not None:
                writer.write(Window(0, step, 8, 1), np.full((1, 8, 1), step, np.uint8))
            reporter.progress((step + 1) / config.steps)
            if step == config.steps // 2:
                reporter.info(f"half way: step {step + 1} of {config.steps}")
        if config.fail == "error":
            raise InputError("diagnostics asked to fail with a structured error.", "FAIL")
        if config.fail == "exception":
            raise RuntimeError("diagnostics asked to fail with an unexpected exception")
        if config.fail == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if config.fail == "exit":
            os._exit(3)
        if writer is not None:
            writer.finalize()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return {"steps": config.steps, "output": config.output or None}
