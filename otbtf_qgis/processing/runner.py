"""Runs core jobs in the worker interpreter on behalf of Processing algorithms.

Finds the interpreter (the ``OTBTF_QGIS_PYTHON`` environment variable, else the
provider setting in Processing > Options > Providers > OTBTF, else the environment
``otbtf:createenvironment`` makes by default, else a default Python), adapts
``QgsProcessingFeedback`` to the core's reporter protocol, and maps worker errors to
``QgsProcessingException``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback

from otbtf_qgis.core.errors import CancelledError, OtbtfError
from otbtf_qgis.core.jobs.client import PYTHON_ENV_VAR, default_python_candidates, run_worker
from otbtf_qgis.core.jobs.environment import venv_python
from otbtf_qgis.core.progress import Reporter

PYTHON_SETTING = "OTBTF_PYTHON"


class FeedbackReporter(Reporter):
    """The core reporter protocol on top of a ``QgsProcessingFeedback``."""

    def __init__(self, feedback: QgsProcessingFeedback | None) -> None:
        self.feedback = feedback

    def progress(self, fraction: float) -> None:
        """Set the feedback's progress in percent."""
        if self.feedback is not None:
            self.feedback.setProgress(100.0 * fraction)

    def info(self, message: str) -> None:
        """Push an info message."""
        if self.feedback is not None:
            self.feedback.pushInfo(message)

    def warning(self, message: str) -> None:
        """Push a warning."""
        if self.feedback is not None:
            self.feedback.reportError(message, False)

    def is_canceled(self) -> bool:
        """Whether the user pressed Cancel."""
        return self.feedback is not None and self.feedback.isCanceled()


def configured_python() -> str:
    """The provider setting (empty when unset or when Processing is not loaded)."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig  # type: ignore[import-not-found]
    except ImportError:
        return ""
    value = ProcessingConfig.getSetting(PYTHON_SETTING)
    return str(value).strip() if value else ""


def default_environment_folder() -> Path:
    """``<QGIS profile folder>/otbtf_qgis/venv``: per profile, writable, outside the plugin folder.

    Where ``otbtf:createenvironment`` creates the worker's environment by default.
    """
    return Path(QgsApplication.qgisSettingsDirPath()) / "otbtf_qgis" / "venv"


def worker_python() -> str:
    """The interpreter that runs the worker.

    The ``OTBTF_QGIS_PYTHON`` environment variable, else the provider setting, else the
    Python of :func:`default_environment_folder` if it exists, else the first existing
    of :func:`~otbtf_qgis.core.jobs.client.default_python_candidates`.
    """
    explicit = os.environ.get(PYTHON_ENV_VAR, "").strip() or configured_python()
    if explicit:
        return explicit
    for candidate in (str(venv_python(default_environment_folder())), *default_python_candidates()):
        if Path(candidate).exists():
            return candidate
    return "python3"


def run_job(command: str, params: Mapping[str, Any], feedback: QgsProcessingFeedback | None,
            outputs: Iterable[str] = ()) -> dict[str, Any]:
    """Run a worker job for an algorithm; return its result dict.

    Raises:
        QgsProcessingException: with the worker's message (the parameter first) on any failure.
    """
    python = worker_python()
    if feedback is not None:
        feedback.pushDebugInfo(f"worker: {python} -m otbtf_qgis.core {command}")
    try:
        return run_worker(python, command, params, FeedbackReporter(feedback), outputs)
    except CancelledError as exc:
        raise QgsProcessingException("Cancelled by the user; no output was written.") from exc
    except OtbtfError as exc:
        raise QgsProcessingException(str(exc)) from exc
