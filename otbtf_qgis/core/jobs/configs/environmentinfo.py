"""The config of the ``environmentinfo`` command (see :mod:`otbtf_qgis.core.tools.environmentinfo`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EnvironmentInfoConfig:
    """The environment report takes no setting."""


def gpu_summary(gpus: list[dict[str, Any]]) -> str:
    """The GPUs of the report, in words: ``none``, or each one's device name, model and compute capability.

    Each GPU is ``{"name": ..., "model": ..., "compute_capability": "8.6" or None}``, as
    the ``environmentinfo`` job reports them.
    """
    if not gpus:
        return "none"
    parts = []
    for gpu in gpus:
        details = [str(gpu["model"])] if gpu.get("model") else []
        if gpu.get("compute_capability"):
            details.append(f"compute capability {gpu['compute_capability']}")
        parts.append(f"{gpu['name']} ({', '.join(details)})" if details else str(gpu["name"]))
    return ", ".join(parts)
