"""The config of the ``diagnostics`` command (see :mod:`otbtf_qgis.core.tools.diagnostics`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class DiagnosticsConfig:
    """Settings of the diagnostics job."""

    steps: int = field(default=10, metadata={"help": "number of progress steps"})
    step_seconds: float = field(default=0.0, metadata={"help": "seconds per step"})
    output: str = field(default="", metadata={"help": "optional GeoTIFF written one row per step"})
    fail: Literal["none", "error", "exception", "crash", "exit", "unresponsive"] = field(
        default="none", metadata={"help": "how to end: none, error, exception, crash, exit; "
                                          "unresponsive ignores SIGTERM"})
