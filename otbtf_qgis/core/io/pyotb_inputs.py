"""pyotb objects as rasters: OTB pipelines as inputs of extraction and serving, and back.

Wherever the core takes a source raster (:class:`~otbtf_qgis.core.jobs.configs.modelserve.SourceConfig`
``paths``, :class:`~otbtf_qgis.core.data.patchesextraction.PatchesExtractionConfig` ``sources``), a
Python caller may give a pyotb object instead of a file: an application
(``pyotb.BandMath(...)``), one of its outputs (``app["out"]``) or a ``pyotb.Input``.
:class:`ScratchRasters` turns them into files for the duration of one call:

- a ``pyotb.Input`` of a plain file (or a GDAL ``/vsi`` path) is read directly: no copy;
- any other pipeline is written by OTB, streamed with OTB's own memory bound (its
  ``ram`` setting, 256 MB by default), to an uncompressed tiled GeoTIFF in a hidden
  temporary folder beside the call's output, keeping the pipeline's pixel type. The
  folder is removed when the call returns, whether it succeeds or fails. Nothing is
  held in memory: a pipeline over a big image costs disk (its size, uncompressed), not
  RAM. The pipeline is computed once per call even when several sources use it.

The objects are recognised by duck typing (an ``app`` with ``ConnectImage`` and an
``output_image_key``), and OTB's Python API is imported only when one is given: the
core imports, and takes file paths, without pyotb or OTB installed.

The other direction needs nothing special: results are GeoTIFF paths, so
``pyotb.BandMath({"il": [result["output"]], "exp": "im1b1 * 2"})`` works, and
:func:`as_pyotb_input` wraps a path as a ``pyotb.Input``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from otbtf_qgis.core.errors import DependencyError, InputError, RasterIOError
from otbtf_qgis.core.progress import NullReporter, Reporter

#: Prefix of the hidden temporary folders holding materialised pipelines.
SCRATCH_PREFIX = ".otbtf-pyotb-"
#: OTB extended file name of the temporary files: tiled for window reads, no ``.geom`` sidecar.
SCRATCH_WRITE_OPTIONS = "?&writegeom=false&gdal:co:TILED=YES&gdal:co:BIGTIFF=IF_SAFER"
#: How to get pyotb and OTB's Python API on this project's environment.
PYOTB_HINT = "install OTB's Python API and pyotb with `make setup-otb` (see the README, 'OTB interop')"


def is_pyotb_image(value: object) -> bool:
    """True for an object that looks like a pyotb image (App, Output, Input, operation result).

    Duck typing: the object has an ``output_image_key`` string and an ``app`` that can be
    connected to another OTB application. pyotb itself is not imported.
    """
    if isinstance(value, (str, bytes, os.PathLike)):
        return False
    try:
        key = value.output_image_key  # type: ignore[attr-defined]
        app = value.app  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - pyotb properties raise various errors on objects without an image output
        return False
    return isinstance(key, str) and callable(getattr(app, "GetParameterOutputImagePixelType", None))


def describe(value: object) -> str:
    """A short name of a raster input for messages: the path, or ``pyotb:<application>``."""
    if is_pyotb_image(value):
        return f"pyotb:{getattr(value, 'name', type(value).__name__)}"
    return os.fspath(value) if isinstance(value, (str, os.PathLike)) else repr(value)


def file_path(value: object, parameter: str = "SOURCES") -> str:
    """``value`` as a file path, for code that reads files only.

    Raises:
        InputError: ``value`` is a pyotb object (the entry points that accept them write
            them to files first) or not a path at all.
    """
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    if is_pyotb_image(value):
        raise InputError(f"{describe(value)} is a pyotb object: this function reads files. Pass it to serve(), "
                         "serve_region() or patches_extraction(), which write pyotb objects to temporary files.",
                         parameter)
    raise InputError(f"{value!r} is not a raster: give a file path or a pyotb object.", parameter)


def import_pyotb() -> Any:
    """Import and return ``pyotb``.

    Raises:
        DependencyError: when pyotb (or OTB's Python API it needs) cannot be imported.
    """
    try:
        import pyotb
    except (ImportError, SystemExit) as exc:  # pyotb exits when it cannot find OTB
        raise DependencyError(f"pyotb cannot be imported ({exc}): {PYOTB_HINT}.", "PYOTB") from exc
    return pyotb


def as_pyotb_input(path: str | os.PathLike[str]) -> Any:
    """Wrap a raster file (e.g. a serving output) as a ``pyotb.Input`` to chain OTB applications.

    Raises:
        DependencyError: pyotb is not installed.
        RasterIOError: the file does not exist.
    """
    text = os.fspath(path)
    if not text.startswith("/vsi") and not os.path.isfile(text):
        raise RasterIOError(f"the raster '{text}' does not exist.", "INPUT")
    return import_pyotb().Input(text)


def _file_behind(value: Any) -> str | None:
    """The file a ``pyotb.Input`` reads, when the object is one and shows all of it; else ``None``."""
    if type(value).__name__ != "Input" or not type(value).__module__.startswith("pyotb"):
        return None
    filepath = getattr(value, "filepath", None)
    if isinstance(filepath, Path):
        if not filepath.is_file():
            return None
        text = str(filepath)
    elif isinstance(filepath, str) and filepath.startswith("/vsi"):
        text = filepath
    else:
        return None
    # An Input whose region or bands were changed afterwards no longer shows the whole file.
    from osgeo import gdal

    try:
        dataset = gdal.OpenEx(text, gdal.OF_RASTER | gdal.OF_READONLY)
        width, height = value.app.GetImageSize(value.output_image_key)
        bands = value.app.GetImageNbBands(value.output_image_key)
    except Exception:  # noqa: BLE001 - anything unexpected: fall back to letting OTB write it
        return None
    if dataset is None or (dataset.RasterXSize, dataset.RasterYSize, dataset.RasterCount) != (width, height, bands):
        return None
    return text


class ScratchRasters:
    """Files for the pyotb objects of one call, in a hidden temporary folder removed by :meth:`close`.

    Use as a context manager. :meth:`path` returns file paths unchanged and writes pyotb
    pipelines (once each) to temporary GeoTIFFs; the folder is created only when a
    pipeline must be written.

    Args:
        near: Folder beside which the temporary folder is created (usually the output's):
            it is writable, and on the disk the user chose for big files.
        reporter: Where to say that a pipeline is being computed, and to check for cancel.
    """

    def __init__(self, near: str | os.PathLike[str], reporter: Reporter | None = None) -> None:
        self.near = Path(near)
        self.reporter = reporter or NullReporter()
        self.folder: Path | None = None
        self.descriptions: dict[str, str] = {}
        self._written: dict[tuple[int, str], str] = {}
        self._objects: list[Any] = []  # keeps the applications alive, so their ids stay unique
        self._count = 0

    def path(self, value: object, parameter: str = "SOURCES") -> str:
        """A file path for ``value``: a path as given, or the temporary file of a pyotb object.

        Raises:
            InputError: ``value`` is neither a path nor a pyotb object.
            RasterIOError: OTB failed to compute or write the pipeline.
        """
        if isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
        if not is_pyotb_image(value):
            raise InputError(f"{value!r} is not a raster: give a file path or a pyotb object (application, "
                             "output or Input).", parameter)
        # The same image may come as different objects (each ``app["out"]`` is a new one).
        identity = (id(value.app), value.output_image_key)  # type: ignore[attr-defined]
        known = self._written.get(identity)
        if known is not None:
            return known
        path = _file_behind(value) or self._write(value, parameter)
        self._written[identity] = path
        self._objects.append(value)
        self.descriptions[path] = describe(value)
        return path

    def paths(self, values: tuple[object, ...] | list[object], parameter: str = "SOURCES") -> tuple[str, ...]:
        """:meth:`path` of each value."""
        return tuple(self.path(value, parameter) for value in values)

    def new_file(self, name: str) -> Path:
        """A path for a temporary file of the caller in the scratch folder (created if needed)."""
        if self.folder is None:
            self.near.mkdir(parents=True, exist_ok=True)
            try:
                self.folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=self.near))
            except OSError as exc:
                raise RasterIOError(f"cannot create a temporary folder in '{self.near}': {exc.strerror}. Choose an "
                                    "output folder you can write to.", "OUTPUT") from exc
        return self.folder / name

    def _write(self, value: Any, parameter: str) -> str:
        self.reporter.check_canceled()
        self._count += 1
        target = self.new_file(f"pyotb_{self._count}.tif")
        name = describe(value)
        self.reporter.info(f"computing {name} with OTB into a temporary GeoTIFF")
        try:
            import otbApplication
        except ImportError as exc:
            raise DependencyError(f"OTB's Python API (otbApplication) cannot be imported: {PYOTB_HINT}.",
                                  parameter) from exc
        owner = getattr(value, "parent_pyotb_app", value)
        try:
            if getattr(owner, "frozen", False):  # a pyotb App built with frozen=True has not run yet
                owner.execute()
            # A separate writer connected to the pipeline: the user's application keeps its settings.
            writer = otbApplication.Registry.CreateApplicationWithoutLogger("ExtractROI")
            writer.ConnectImage("in", value.app, value.output_image_key)
            writer.SetParameterString("out", f"{target}{SCRATCH_WRITE_OPTIONS}")
            writer.SetParameterOutputImagePixelType(
                "out", value.app.GetParameterOutputImagePixelType(value.output_image_key))
            writer.ExecuteAndWriteOutput()
        except RuntimeError as exc:
            raise RasterIOError(f"OTB could not compute {name}: {str(exc).strip()}", parameter) from exc
        if not target.is_file():
            raise RasterIOError(f"OTB did not write {name} to '{target}'.", parameter)
        self.reporter.check_canceled()
        return str(target)

    def close(self) -> None:
        """Remove the temporary folder and everything in it."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
        self._written.clear()
        self._objects.clear()

    def __enter__(self) -> ScratchRasters:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
