"""The config of the ``environmentinfo`` command (see :mod:`otbtf_qgis.core.tools.environmentinfo`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvironmentInfoConfig:
    """The environment report takes no setting."""
