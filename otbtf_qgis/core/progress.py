"""Progress and cancel: the small callback protocol between long jobs and front ends.

Core jobs take a :class:`Reporter`. They call :meth:`Reporter.progress` with a fraction
in [0, 1], :meth:`Reporter.info`/:meth:`Reporter.warning` with messages, and
:meth:`Reporter.check_canceled` between units of work (tiles, batches, blocks). The same
protocol crosses the worker process boundary: the worker wraps it in JSON lines and the
Processing side maps it to ``QgsProcessingFeedback``. Nothing here knows about QGIS.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Any

from otbtf_qgis.core.errors import CancelledError


class Reporter:
    """Base reporter: silent, never cancelled. Subclasses override the hooks."""

    def progress(self, fraction: float) -> None:
        """Report the overall progress as a fraction in [0, 1]."""

    def info(self, message: str) -> None:
        """Report an informational message."""

    def warning(self, message: str) -> None:
        """Report a warning (something the user should look at)."""

    def is_canceled(self) -> bool:
        """Return True when the user asked the job to stop."""
        return False

    def check_canceled(self) -> None:
        """Raise :class:`CancelledError` if the user asked the job to stop."""
        if self.is_canceled():
            raise CancelledError()

    def sub(self, start: float, end: float) -> Reporter:
        """Return a reporter whose [0, 1] progress maps to [start, end] of this one."""
        return SubReporter(self, start, end)


class NullReporter(Reporter):
    """A reporter that ignores everything (the default for library calls)."""


class SubReporter(Reporter):
    """Maps the progress of a sub-task onto a slice of a parent reporter."""

    def __init__(self, parent: Reporter, start: float, end: float) -> None:
        self.parent = parent
        self.start = start
        self.end = end

    def progress(self, fraction: float) -> None:
        """Forward ``fraction`` rescaled to the parent's [start, end]."""
        fraction = min(max(fraction, 0.0), 1.0)
        self.parent.progress(self.start + (self.end - self.start) * fraction)

    def info(self, message: str) -> None:
        """Forward to the parent."""
        self.parent.info(message)

    def warning(self, message: str) -> None:
        """Forward to the parent."""
        self.parent.warning(message)

    def is_canceled(self) -> bool:
        """Ask the parent."""
        return self.parent.is_canceled()


class JsonLinesReporter(Reporter):
    """Writes the worker protocol: one JSON object per line.

    Message types: ``progress`` (``value``), ``info``/``warning`` (``message``),
    ``result`` (``value``), ``error`` (``error``, ``message``, ``parameter``).
    Progress lines are throttled to at most one per ``min_interval`` seconds unless the
    value reaches 1. Cancellation is signalled from outside through :attr:`cancel_event`.

    Args:
        stream: Where to write (the worker's private copy of stdout).
        min_interval: Minimum seconds between two progress lines.
    """

    def __init__(self, stream: IO[str], min_interval: float = 0.05) -> None:
        self.stream = stream
        self.min_interval = min_interval
        self.cancel_event = threading.Event()
        self._lock = threading.Lock()
        self._last_progress = -1.0
        self._last_time = 0.0

    def emit(self, message: dict[str, Any]) -> None:
        """Write one protocol message and flush."""
        line = json.dumps(message, default=str)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def progress(self, fraction: float) -> None:
        """Emit a throttled ``progress`` message."""
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_time < self.min_interval:
            return
        if fraction == self._last_progress:
            return
        self._last_progress = fraction
        self._last_time = now
        self.emit({"type": "progress", "value": round(float(fraction), 6)})

    def info(self, message: str) -> None:
        """Emit an ``info`` message."""
        self.emit({"type": "info", "message": message})

    def warning(self, message: str) -> None:
        """Emit a ``warning`` message."""
        self.emit({"type": "warning", "message": message})

    def is_canceled(self) -> bool:
        """True once the front end asked to cancel."""
        return self.cancel_event.is_set()


class TextReporter(Reporter):
    """Human-readable reporter for command-line use: writes to stderr."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._last_percent = -1

    def progress(self, fraction: float) -> None:
        """Print the percentage when it changes."""
        percent = int(fraction * 100)
        if percent != self._last_percent:
            self._last_percent = percent
            self.stream.write(f"\r{percent:3d}%")
            if percent >= 100:
                self.stream.write("\n")
            self.stream.flush()

    def info(self, message: str) -> None:
        """Print the message on its own line."""
        self.stream.write(f"\n{message}\n" if self._last_percent >= 0 else f"{message}\n")
        self.stream.flush()

    def warning(self, message: str) -> None:
        """Print the message prefixed with ``WARNING``."""
        self.info(f"WARNING: {message}")
