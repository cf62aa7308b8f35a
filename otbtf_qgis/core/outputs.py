"""Temporary output names and their cleanup, on the standard library only.

Outputs are written to a hidden temporary sibling of the destination and renamed only
when complete (see :func:`otbtf_qgis.core.raster.atomic_output`). This module names
those siblings and removes them; it imports neither GDAL nor numpy, so the calling side
of the worker (:mod:`otbtf_qgis.core.client`, inside QGIS) can clean up after a failed
or cancelled job without loading them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

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
