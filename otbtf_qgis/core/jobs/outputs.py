"""Temporary output names and their cleanup, on the standard library only.

Outputs are written to a hidden temporary sibling of the destination and renamed only
when complete: :func:`atomic_output` for files and folders written in one go,
:class:`PublishOnSuccess` for writers that publish themselves (the GeoTIFF and striped
TIFF writers). This module names those siblings, publishes and removes them; it imports
neither GDAL nor numpy, so jobs that only rename a folder need neither, and the calling
side of the worker (:mod:`otbtf_qgis.core.jobs.client`, inside QGIS) can clean up after a
failed or cancelled job.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from otbtf_qgis.core.errors import RasterIOError

#: Marks a temporary sibling of an output: ``.<name>.partial-<pid><suffix>``.
PARTIAL_MARK = ".partial-"


def partial_name(final: str | os.PathLike[str]) -> Path:
    """Temporary sibling of ``final`` used while it is written.

    ``/d/out.tif`` → ``/d/.out.tif.partial-<pid>.tif``: hidden, unique per process,
    same suffix (drivers that look at it are happy), and recognisable by
    :func:`remove_partials` after a crash.
    """
    path = Path(final)
    return path.with_name(f".{path.name}{PARTIAL_MARK}{os.getpid()}{path.suffix}")


def remove_partials(final: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary siblings of ``final`` left by any process; return what was removed."""
    path = Path(final)
    removed = []
    if path.parent.is_dir():
        for candidate in path.parent.glob(f".{path.name}{PARTIAL_MARK}*"):
            remove_path(candidate)
            removed.append(candidate)
    return removed


def remove_path(path: Path) -> None:
    """Delete a file, a symlink or a whole folder; a missing path is not an error."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def ensure_writable_parent(path: Path, parameter: str = "OUTPUT") -> None:
    """Create the parent folder of ``path`` if needed and check it is writable.

    Raises:
        RasterIOError: naming ``parameter`` when the folder cannot be created or written.
    """
    parent = path.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RasterIOError(f"cannot create the output folder '{parent}': {exc.strerror}. "
                            "Choose a folder you can write to.", parameter) from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RasterIOError(f"the output folder '{parent}' is not writable. Choose a folder you can write to.",
                            parameter)


@contextlib.contextmanager
def atomic_output(final: str | os.PathLike[str], parameter: str = "OUTPUT") -> Iterator[Path]:
    """Yield a temporary path to write ``final`` (file or folder) to; publish it on success.

    On normal exit the temporary path replaces ``final`` (an existing output is
    overwritten); on any exception it is removed and the exception propagates.

    Raises:
        RasterIOError: if the destination folder does not exist or is not writable.
    """
    final_path = Path(final)
    ensure_writable_parent(final_path, parameter)
    temp = partial_name(final_path)
    remove_path(temp)
    try:
        yield temp
    except BaseException:
        remove_path(temp)
        raise
    if final_path.exists() or final_path.is_symlink():
        remove_path(final_path)
    os.replace(temp, final_path)


_Writer = TypeVar("_Writer", bound="PublishOnSuccess")


class PublishOnSuccess:
    """Context-manager protocol of the atomic writers: publish on success, abort on error.

    Subclasses implement :meth:`finalize` (close and publish under the final name) and
    :meth:`abort` (close and delete the temporary file).
    """

    def finalize(self) -> Path:
        """Close the output and publish it under its final name."""
        raise NotImplementedError

    def abort(self) -> None:
        """Close the output and delete it; nothing is published."""
        raise NotImplementedError

    def __enter__(self: _Writer) -> _Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.abort()
