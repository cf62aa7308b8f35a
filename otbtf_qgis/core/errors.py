"""The error hierarchy of the core.

One root, :class:`OtbtfError`, and a few children that also inherit the matching
built-in exception (as rasterio does), so callers can catch either. Every error may
name the user-facing ``parameter`` it is about; messages say what was wrong, the bad
value, and how to fix it. The worker serialises errors with :meth:`OtbtfError.to_dict`
and the Processing side turns them into ``QgsProcessingException``.
"""

from __future__ import annotations

from typing import Any


class OtbtfError(Exception):
    """Root of every error raised on purpose by otbtf_qgis.

    Args:
        message: What went wrong, the bad value, and what to do about it.
        parameter: The user-facing parameter the error is about (e.g. ``"SOURCES"``).
    """

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter

    def __str__(self) -> str:
        if self.parameter:
            return f"{self.parameter}: {self.message}"
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its parameter (the default keeps ``args`` only): errors raised in a
        # Dask worker reach the client whole.
        return (type(self), (self.message, self.parameter), self.__dict__)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-serialisable form used by the worker protocol."""
        return {"error": type(self).__name__, "message": self.message, "parameter": self.parameter}


class InputError(OtbtfError, ValueError):
    """A parameter value is invalid (wrong type, out of range, inconsistent)."""


class RasterIOError(OtbtfError, OSError):
    """A raster or other file cannot be opened, read or written."""


class DatasetError(OtbtfError, ValueError):
    """A patches-image or TFRecords dataset is inconsistent or corrupt."""


class ModelError(OtbtfError, ValueError):
    """A model (SavedModel, model file, checkpoint) is unusable as given."""


class DependencyError(OtbtfError, ImportError):
    """A required third-party package (usually TensorFlow) is missing or broken."""


class CancelledError(OtbtfError):
    """The user cancelled the job; partial outputs have been removed."""

    def __init__(self, message: str = "Cancelled by the user.", parameter: str | None = None) -> None:
        super().__init__(message, parameter)


ERROR_TYPES: dict[str, type[OtbtfError]] = {
    cls.__name__: cls
    for cls in (OtbtfError, InputError, RasterIOError, DatasetError, ModelError, DependencyError, CancelledError)
}


def error_from_dict(data: dict[str, Any]) -> OtbtfError:
    """Rebuild an error serialised by :meth:`OtbtfError.to_dict`.

    Unknown error names become a plain :class:`OtbtfError`.
    """
    cls = ERROR_TYPES.get(str(data.get("error")), OtbtfError)
    return cls(str(data.get("message", "")), data.get("parameter"))
