"""The serving engine: a SavedModel applied over whole rasters, tile by tile, cropped.

:func:`prepare` resolves a :class:`~otbtf_qgis.core.serving.config.ServeConfig` into a
:class:`ServingPlan`: the sources are opened and checked, the model's signature is
matched to them, missing settings come from ``otbtf_model.json`` (then from the
signature, then from probing the model), the output grid and the tile size are
computed (see :mod:`~otbtf_qgis.core.serving.geometry`) and the model is traced once
for the tile shape. :meth:`ServingPlan.serve` then streams any rectangular region of the
output grid into its own GeoTIFF; :func:`serve` does the whole grid and
:func:`write_mosaic_vrt` mosaics region files.

The stream is three stages joined by bounded queues, so memory does not depend on the
image size and reading, computing and writing overlap (GDAL and TensorFlow release the
GIL):

- a reader thread (its own GDAL datasets) reads each tile's input windows, already cast
  to the model's input dtype, and finds the output pixels whose input is nodata: those
  whose centre lies on a source pixel with a band equal to that source's nodata;
- model threads run the traced model (edge tiles are padded to the regular tile shape,
  so the model is traced once) or skip it when every pixel of the tile is nodata
  (OTBTF skips a tile whose input is entirely nodata; such tiles are skipped here too,
  and so are tiles whose pixels all fall on nodata). There are two when
  TensorFlow's threads were split between two concurrent tiles
  (:func:`~otbtf_qgis.core.serving.model.configure_threads`, done by the worker), else one;
- a writer thread crops, casts and writes the tiles (and the class map), the nodata
  pixels set to BACKGROUND (the output's nodata), flushing whole blocks as it goes.

Since whether a pixel is nodata depends on that pixel only, the output does not depend on
the tile size, nodata included.

The calling thread reports progress after each written tile and checks for cancel.

The GDAL block cache is capped while serving: every input pixel is read about once, and
an uncapped cache (5% of the RAM by default) would make memory grow with the image.

Sources given as pyotb objects are written by OTB to temporary files when the plan is
prepared (see :mod:`otbtf_qgis.core.pyotb_io`); the plan owns them until
:meth:`ServingPlan.close`, which :func:`serve` and :func:`serve_region` call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from osgeo import gdal

from otbtf_qgis.core.errors import InputError, ModelError, RasterIOError
from otbtf_qgis.core.progress import NullReporter, Reporter
from otbtf_qgis.core.pyotb_io import ScratchRasters, file_path
from otbtf_qgis.core.raster import (
    DEFAULT_CREATION_OPTIONS,
    GeoTiffWriter,
    RasterInfo,
    ensure_writable_parent,
    nodata_mask,
    open_raster,
    raster_info,
    read_window,
    same_crs,
    window_geotransform,
)
from otbtf_qgis.core.serving.config import ServeConfig, parse_user_placeholders
from otbtf_qgis.core.serving.geometry import (
    ServingGeometry,
    SourceGeometry,
    auto_tile_size,
    axis_grids,
    common_extent,
    footprint_length,
    rational,
)
from otbtf_qgis.core.serving.model import (
    ServingModel,
    TensorInfo,
    TileFunction,
    concurrent_tiles,
    configure_threads,
    parse_constant,
)
from otbtf_qgis.core.windows import Window, intersection, round_up, tile_grid

#: Largest input tile side (pixels) of the automatic tile size. Big tiles are the main
#: performance lever (the serving benchmark compares tile sizes), bounded here to bound memory.
MAX_INPUT_TILE = 1088
#: Memory for the patches of one tile in patch-based mode (bytes).
PATCH_TILE_BYTES = 64 << 20
#: GDAL block cache while serving (bytes), unless the user set GDAL_CACHEMAX.
GDAL_CACHE_BYTES = 64 << 20
#: Tiles waiting between two stages: enough to keep each stage busy, bounded for memory.
QUEUE_DEPTH = 2
#: Niceness added to the reader and writer threads (see :func:`_yield_to_the_model`).
IO_THREAD_NICENESS = 5
#: Default class map palette (qualitative colours, then repeated).
CLASS_PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
    (219, 219, 141), (158, 218, 229),
)
#: Conventional colours of common land-cover class names (matched on the lower-cased name).
NAMED_CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "water": (30, 90, 200), "sea": (30, 90, 200), "river": (30, 90, 200), "lake": (30, 90, 200),
    "tree": (20, 110, 40), "trees": (20, 110, 40), "forest": (20, 110, 40), "wood": (20, 110, 40),
    "crop": (235, 200, 60), "crops": (235, 200, 60), "cropland": (235, 200, 60), "agriculture": (235, 200, 60),
    "grass": (140, 200, 90), "grassland": (140, 200, 90), "meadow": (140, 200, 90),
    "developed": (200, 40, 40), "urban": (200, 40, 40), "built": (200, 40, 40), "building": (200, 40, 40),
    "bare": (170, 140, 100), "soil": (170, 140, 100), "sand": (230, 210, 160),
    "cloud": (240, 240, 240), "snow": (250, 250, 255), "shadow": (60, 60, 60),
}
_END = object()


def class_palette(names: Sequence[str], count: int) -> list[tuple[int, int, int]]:
    """Colours of ``count`` classes: conventional ones for known names, the qualitative palette otherwise."""
    colors = []
    for index in range(count):
        name = names[index].strip().lower() if index < len(names) else ""
        colors.append(NAMED_CLASS_COLORS.get(name, CLASS_PALETTE[index % len(CLASS_PALETTE)]))
    return colors


@dataclass(frozen=True)
class SourcePlan:
    """One source, resolved.

    Attributes:
        paths: Its raster(s), bands stacked in order.
        file_bands: Band count of each raster.
        placeholder: The model input it feeds.
        receptive_field: ``(x, y)``.
        nodata: Its nodata value, or ``None`` when nodata is not used.
        dtype: The model input's dtype (what reads are cast to).
        info: Description of its first raster.
    """

    paths: tuple[str, ...]
    file_bands: tuple[int, ...]
    placeholder: str
    receptive_field: tuple[int, int]
    nodata: float | None
    dtype: str
    info: RasterInfo

    @property
    def bands(self) -> int:
        """Bands of the source (all rasters)."""
        return sum(self.file_bands)

    @property
    def fill_value(self) -> float:
        """Value of input pixels outside the raster: its nodata, else 0."""
        return 0.0 if self.nodata is None else self.nodata


class TileInputs(NamedTuple):
    """What the reader gives the model workers for one tile."""

    #: Model inputs, one per source; ``None`` when every output pixel is nodata (the model is skipped).
    arrays: list[npt.NDArray[Any]] | None
    #: ``(rows, cols)``, True on output pixels whose input is nodata (they get BACKGROUND); ``None`` if none.
    nodata: npt.NDArray[np.bool_] | None


@dataclass
class _Stats:
    read: float = 0.0
    predict: float = 0.0
    write: float = 0.0
    read_cpu: float = 0.0
    write_cpu: float = 0.0
    written: int = 0
    skipped: int = 0
    errors: list[BaseException] = field(default_factory=list)
    #: Tiles written so far, one item per tile, then ``_END`` once the writer is done.
    done: queue.Queue[Any] = field(default_factory=queue.Queue)
    #: Model workers still running; the last one to stop ends the writer's queue.
    models_running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class ServingPlan:
    """Everything resolved to serve: sources, model, geometry, tile size, outputs.

    Build it with :func:`prepare`; call :meth:`serve` once per region, then :meth:`close`
    (or use the plan as a context manager) to remove the temporary files of pyotb sources.
    """

    def __init__(self, config: ServeConfig, model: ServingModel, sources: list[SourcePlan],
                 output_names: list[str], geometry: ServingGeometry, tile_size: tuple[int, int],
                 constants: dict[str, npt.NDArray[Any]], creation_options: list[str],
                 block_size: tuple[int, int]) -> None:
        self.config = config
        self.model = model
        self.sources = sources
        self.output_names = output_names
        self.geometry = geometry
        self.tile_size = tile_size
        self.constants = constants
        self.creation_options = creation_options
        self.block_size = block_size
        self.fully_convolutional = config.fully_convolutional
        self.geotransform = geometry.geotransform(sources[0].info.geotransform, config.fully_convolutional)
        self.crs_wkt = sources[0].info.crs_wkt
        self.uses_nodata = any(s.nodata is not None for s in sources)
        self.workers = concurrent_tiles()
        self.function: TileFunction = self._trace()
        self.output_bands: list[int] = self._probe_output_bands()
        self.scratch: ScratchRasters | None = None

    def close(self) -> None:
        """Remove the temporary files written for pyotb sources (the plan cannot serve afterwards)."""
        if self.scratch is not None:
            self.scratch.close()
            self.scratch = None

    def __enter__(self) -> ServingPlan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- setup
    @property
    def batch(self) -> int:
        """Model batch per tile: 1 tile, or one patch per output pixel."""
        return 1 if self.fully_convolutional else self.tile_size[0] * self.tile_size[1]

    @property
    def classes_dtype(self) -> type[np.unsignedinteger[Any]]:
        """Type of the class map: uint8 below 255 classes (255 is its nodata), else uint16."""
        return np.uint8 if self.output_bands[0] < 255 else np.uint16

    @property
    def regular_tile(self) -> Window:
        """The regular tile shape at the origin."""
        return Window(0, 0, self.tile_size[0], self.tile_size[1])

    def input_shape(self, index: int) -> tuple[int, ...]:
        """Shape of the model input of source ``index`` for one tile."""
        source = self.sources[index]
        if self.fully_convolutional:
            window = self.geometry.input_window(index, self.regular_tile)
            return (1, window.height, window.width, source.bands)
        return (self.batch, source.receptive_field[1], source.receptive_field[0], source.bands)

    def _trace(self) -> TileFunction:
        specs = [(s.placeholder, self.input_shape(i), s.dtype) for i, s in enumerate(self.sources)]
        return self.model.tile_function(specs, self.constants, self.output_names)

    def _probe_output_bands(self) -> list[int]:
        """Run one tile of zeros: check the output shapes against the geometry, count bands."""
        arrays = [np.zeros(self.input_shape(i), dtype=s.dtype) for i, s in enumerate(self.sources)]
        try:
            outputs = self.function(*arrays)
        except Exception as exc:  # TensorFlow's errors are many; the message says what failed
            shapes = ", ".join(f"{s.placeholder} {list(self.input_shape(i))}" for i, s in enumerate(self.sources))
            raise ModelError(f"the model fails on tiles of {shapes}: {_first_line(exc)}. Check RFIELDS, EFIELD, "
                             "TILE_SIZE and the sources' bands.", "MODEL") from exc
        bands = []
        width, height = self.tile_size
        for name, array in zip(self.output_names, outputs, strict=True):
            if self.fully_convolutional:
                ok = array.ndim in (3, 4) and array.shape[0] == 1 and array.shape[1:3] == (height, width)
                if not ok:
                    size = "x".join(str(v) for v in array.shape[2:0:-1]) if array.ndim >= 3 else str(array.shape)
                    window = self.geometry.input_window(0, self.regular_tile)
                    rf = "x".join(map(str, self.sources[0].receptive_field))
                    ef = "x".join(map(str, self.geometry.expression_field))
                    raise InputError(
                        f"the model output '{name}' has {size} pixels for an input of {window.width}x{window.height},"
                        f" but with receptive field {rf} and expression field {ef} it should have {width}x{height}. "
                        "Give the RFIELDS and EFIELD of this output (for a cropped output '<name>_cropN' computed "
                        "on an input of rf pixels, ef = rf - 2N).", "EFIELD")
            else:
                ok = array.shape[:1] == (self.batch,) and (array.ndim <= 2 or array.shape[1:3] == (1, 1))
                if not ok:
                    raise InputError(f"in patch-based mode the model must return one pixel per patch, but '{name}' "
                                     f"has shape {list(array.shape[1:])} per patch. Use FULLYCONV=true, or an output "
                                     "of one pixel per patch.", "FULLYCONV")
            if array.ndim == 4:
                bands.append(int(array.shape[3]))
            elif array.ndim == 2 and not self.fully_convolutional:
                bands.append(int(array.shape[1]))  # one value per class for each patch
            else:
                bands.append(1)
        return bands

    # --------------------------------------------------------------------------- serving
    def serve(self, output: str | os.PathLike[str], window: Window | None = None, output_classes: str = "",
              reporter: Reporter | None = None) -> dict[str, Any]:
        """Serve ``window`` of the output grid (default: all of it) into ``output``.

        Args:
            output: The GeoTIFF to write (published only when complete).
            window: A region of the output grid, clipped to the grid; its pixels are
                those of the whole grid's output.
            output_classes: Optional class map GeoTIFF (argmax of the first output).
            reporter: Progress and cancel.

        Returns:
            A JSON-serialisable summary: paths, size, geotransform, tiles, timings.

        Raises:
            InputError: the window is outside the grid.
            RasterIOError: reading or writing failed (nothing is published).
            CancelledError: the reporter asked to stop (nothing is published).
        """
        reporter = reporter or NullReporter()
        region = self._region(window)
        tiles = self._tiles(region)
        started = time.perf_counter()
        geotransform = window_geotransform(self.geotransform, region)
        writers: list[GeoTiffWriter] = []
        published: list[Path] = []
        stats = _Stats()
        try:
            with _gdal_cache_limit():
                writers.append(self._output_writer(Path(output), region, geotransform))
                if output_classes:
                    writers.append(self._class_writer(Path(output_classes), region, geotransform))
                self._stream(tiles, region, writers, stats, reporter)
                for writer in writers:
                    published.append(writer.finalize())
        except BaseException:
            for writer in writers:
                writer.abort()
            for path in published:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            raise
        reporter.progress(1.0)
        seconds = time.perf_counter() - started
        return {
            "output": str(output),
            "output_classes": str(output_classes) if output_classes else None,
            "width": region.width,
            "height": region.height,
            "bands": sum(self.output_bands),
            "geotransform": list(geotransform),
            "region": [region.col_off, region.row_off, region.width, region.height],
            "grid_size": [self.geometry.width, self.geometry.height],
            "output_names": list(self.output_names),
            "placeholders": [s.placeholder for s in self.sources],
            "receptive_fields": [list(s.receptive_field) for s in self.sources],
            "expression_field": list(self.geometry.expression_field),
            "spacing_scale": float(self.geometry.spacing_scale),
            "fully_convolutional": self.fully_convolutional,
            "tile_size": list(self.tile_size),
            "model_workers": self.workers,
            "tiles": len(tiles),
            "skipped_tiles": stats.skipped,
            "nodata": self.config.background if self.uses_nodata else None,
            "seconds": round(seconds, 3),
            "read_seconds": round(stats.read, 3),
            "predict_seconds": round(stats.predict, 3),
            "write_seconds": round(stats.write, 3),
            "read_cpu_seconds": round(stats.read_cpu, 3),
            "write_cpu_seconds": round(stats.write_cpu, 3),
            "mpix_per_second": round(region.width * region.height / 1e6 / max(seconds, 1e-9), 3),
        }

    def _region(self, window: Window | None) -> Window:
        grid = self.geometry.window
        if window is None:
            return grid
        region = intersection(window, grid)
        if region is None:
            raise InputError(f"the region {window} is outside the output grid "
                             f"({grid.width}x{grid.height}).", "REGION")
        return region

    def _tiles(self, region: Window) -> list[Window]:
        """Tiles covering ``region``, starting at a multiple of the expression field from the grid's origin.

        Tiles at the same phase as the whole grid's give the same pixels; the writer keeps
        the part of each tile inside ``region``.
        """
        ef_x, ef_y = self.geometry.expression_field
        left, top = region.col_off - region.col_off % ef_x, region.row_off - region.row_off % ef_y
        width, height = region.col_off + region.width - left, region.row_off + region.height - top
        return [tile.translate(left, top) for tile in tile_grid(width, height, *self.tile_size)]

    def _output_writer(self, path: Path, region: Window, geotransform: Sequence[float]) -> GeoTiffWriter:
        descriptions = []
        class_names = self.model.metadata.class_names
        for name, count in zip(self.output_names, self.output_bands, strict=True):
            if count == 1:
                descriptions.append(name)
            elif len(class_names) == count:
                descriptions.extend(f"{name}: {class_name}" for class_name in class_names)
            else:
                descriptions.extend(f"{name}: {k}" for k in range(count))
        writer = GeoTiffWriter(path, region.width, region.height, sum(self.output_bands), self.config.output_type,
                               geotransform, self.crs_wkt, self.config.background if self.uses_nodata else None,
                               self.creation_options, descriptions, self.config.cog, "OUTPUT")
        writer.set_metadata(self._provenance())
        return writer

    def _class_writer(self, path: Path, region: Window, geotransform: Sequence[float]) -> GeoTiffWriter:
        classes = self.output_bands[0]
        dtype = self.classes_dtype
        nodata = int(np.iinfo(dtype).max) if self.uses_nodata else None
        writer = GeoTiffWriter(path, region.width, region.height, 1, dtype, geotransform, self.crs_wkt, nodata,
                               self.creation_options, ["class"], self.config.cog, "OUTPUT_CLASSES")
        metadata = self.model.metadata
        names = list(metadata.class_names) if len(metadata.class_names) == classes else [
            f"class {k}" for k in range(classes)]
        colors = list(metadata.class_colors) if len(metadata.class_colors) >= classes else class_palette(
            names, classes)
        writer.set_color_table(colors[:classes], names)
        writer.set_metadata({**self._provenance(), "otbtf_class_output": self.output_names[0]})
        return writer

    def _provenance(self) -> dict[str, str]:
        return {
            "otbtf_model": str(self.model.folder),
            "otbtf_outputs": ";".join(self.output_names),
            "otbtf_placeholders": ";".join(s.placeholder for s in self.sources),
            "otbtf_receptive_fields": ";".join("x".join(map(str, s.receptive_field)) for s in self.sources),
            "otbtf_expression_field": "x".join(map(str, self.geometry.expression_field)),
            "otbtf_spacing_scale": f"{float(self.geometry.spacing_scale):g}",
        }

    def _stream(self, tiles: list[Window], region: Window, writers: list[GeoTiffWriter], stats: _Stats,
                reporter: Reporter) -> None:
        """Run the reader, the model workers and the writer; report progress and check cancel meanwhile."""
        read_queue: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH + self.workers)
        write_queue: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH + self.workers)
        stop = threading.Event()
        reader = threading.Thread(target=self._read_loop, args=(tiles, read_queue, stop, stats),
                                  name="otbtf-serve-read", daemon=True)
        models = [threading.Thread(target=self._predict_loop, args=(read_queue, write_queue, stop, stats),
                                   name=f"otbtf-serve-model-{k}", daemon=True) for k in range(self.workers)]
        writer = threading.Thread(target=self._write_loop, args=(region, writers, write_queue, stop, stats),
                                  name="otbtf-serve-write", daemon=True)
        threads = [reader, *models, writer]
        stats.models_running = len(models)
        for thread in threads:
            thread.start()
        try:
            while True:
                try:
                    written: Any = stats.done.get(timeout=0.1)
                except queue.Empty:
                    written = None
                if stats.errors:
                    raise stats.errors[0]
                reporter.check_canceled()
                if written is _END:
                    break
                if written is not None:
                    reporter.progress(0.99 * written / len(tiles))
        finally:
            stop.set()
            for thread in threads:
                _drain(read_queue)
                _drain(write_queue)
                thread.join()

    def _predict_loop(self, source: queue.Queue[Any], target: queue.Queue[Any], stop: threading.Event,
                      stats: _Stats) -> None:
        """One model worker: inputs from the reader, outputs to the writer (tiles in any order)."""
        try:
            while True:
                item = _get(source, stop, stats)
                if item is _END:
                    _put(source, _END, stop, stats)  # for the other workers
                    with stats.lock:
                        stats.models_running -= 1
                        last = stats.models_running == 0
                    if last:  # the writer stops as soon as the last tile is written
                        _put(target, _END, stop, stats)
                    return
                tile, inputs = item
                outputs = None
                if inputs.arrays is not None:
                    started = time.perf_counter()
                    outputs = self.function(*inputs.arrays)
                    stats.predict += time.perf_counter() - started
                _put(target, (tile, outputs, inputs.nodata), stop, stats)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            stats.errors.append(exc)
            stop.set()

    def _read_loop(self, tiles: list[Window], out: queue.Queue[Any], stop: threading.Event, stats: _Stats) -> None:
        _yield_to_the_model()
        try:
            datasets = self.open_sources()
            for tile in tiles:
                if stop.is_set():
                    return
                started, cpu = time.perf_counter(), time.thread_time()
                item = (tile, self.read_tile(datasets, tile))
                stats.read += time.perf_counter() - started
                stats.read_cpu += time.thread_time() - cpu
                _put(out, item, stop, stats)
            _put(out, _END, stop, stats)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            stats.errors.append(exc)
            stop.set()

    def open_sources(self) -> list[list[gdal.Dataset]]:
        """Open every raster of every source (GDAL datasets are used by one thread at a time)."""
        return [[open_raster(path, "SOURCES") for path in source.paths] for source in self.sources]

    def read_tile(self, datasets: list[list[gdal.Dataset]], tile: Window) -> TileInputs:
        """Model inputs of output ``tile`` (padded to the regular shape) and its nodata pixels.

        Args:
            datasets: From :meth:`open_sources`.
            tile: An output window of the grid, at most the tile size.
        """
        regular = Window(tile.col_off, tile.row_off, *self.tile_size)
        arrays = []
        nodata: npt.NDArray[np.bool_] | None = None
        for index, (source, files) in enumerate(zip(self.sources, datasets, strict=True)):
            if self.fully_convolutional:
                window = self.geometry.input_window(index, regular)
            else:
                cols, rows = self.geometry.patch_starts(index, regular)
                rf_x, rf_y = source.receptive_field
                window = Window(cols[0], rows[0], cols[-1] - cols[0] + rf_x, rows[-1] - rows[0] + rf_y)
            array = _read_source(files, source, window)
            if source.nodata is not None:
                starts = (self.geometry.patch_starts(index, tile) if self.fully_convolutional
                          else (cols[:tile.width], rows[:tile.height]))
                pixels = _nodata_centres(array, window, starts, source.receptive_field, source.nodata)
                nodata = pixels if nodata is None else nodata | pixels
                if nodata.all():
                    return TileInputs(None, nodata)
            if self.fully_convolutional:
                arrays.append(array[None])
            else:
                arrays.append(_patches(array, np.array(cols) - cols[0], np.array(rows) - rows[0],
                                       source.receptive_field))
        return TileInputs(arrays, nodata if nodata is not None and nodata.any() else None)

    def _write_loop(self, region: Window, writers: list[GeoTiffWriter], source: queue.Queue[Any],
                    stop: threading.Event, stats: _Stats) -> None:
        _yield_to_the_model()
        try:
            aligned = self._block_aligned(region)
            while True:
                item = _get(source, stop, stats)
                if item is _END:
                    if not stop.is_set():
                        stats.done.put(_END)
                    return
                tile, outputs, nodata = item
                started, cpu = time.perf_counter(), time.thread_time()
                part = intersection(tile, region)
                assert part is not None  # tiles cover the region
                inside = part.relative_to(tile).slices()
                data, classes = self._tile_rasters(tile, outputs, nodata, len(writers) > 1)
                writers[0].write(part.relative_to(region), data[inside])
                if classes is not None:
                    writers[1].write(part.relative_to(region), classes[inside])
                if aligned:
                    for writer in writers:
                        if writer.dataset is not None:
                            writer.dataset.FlushCache()
                stats.write += time.perf_counter() - started
                stats.write_cpu += time.thread_time() - cpu
                stats.written += 1
                if outputs is None:
                    stats.skipped += 1
                stats.done.put(stats.written)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            stats.errors.append(exc)
            stop.set()

    def _block_aligned(self, region: Window) -> bool:
        """True when every tile covers whole output blocks (they can be flushed one tile at a time)."""
        block_x, block_y = self.block_size
        tile_x, tile_y = self.tile_size
        ef_x, ef_y = self.geometry.expression_field
        if region.col_off % ef_x or region.row_off % ef_y:  # the first tiles are cut by the region
            return False
        return (tile_x % block_x == 0 or tile_x >= region.width) and (tile_y % block_y == 0 or tile_y >= region.height)

    def _tile_rasters(self, tile: Window, outputs: list[npt.NDArray[Any]] | None,
                      nodata: npt.NDArray[np.bool_] | None, with_classes: bool
                      ) -> tuple[npt.NDArray[Any], npt.NDArray[Any] | None]:
        """The output pixels of ``tile`` (cropped, cast, background where ``nodata``) and, if asked, its class map."""
        dtype = np.dtype(self.config.output_type)
        classes_dtype = self.classes_dtype
        no_class = np.iinfo(classes_dtype).max
        shape = (tile.height, tile.width)
        if outputs is None:
            background = np.full((*shape, sum(self.output_bands)), self.config.background, dtype)
            return (background, np.full(shape, no_class, classes_dtype) if with_classes else None)
        planes = [self._as_image(array)[:tile.height, :tile.width] for array in outputs]
        data = _cast(planes[0] if len(planes) == 1 else np.concatenate(planes, axis=2), dtype)
        classes = np.argmax(planes[0], axis=2).astype(classes_dtype) if with_classes else None
        if nodata is not None:
            data = np.where(nodata[:, :, None], np.asarray(self.config.background, dtype), data)
            if classes is not None:
                classes[nodata] = no_class
        return (data, classes)

    def _as_image(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """A model output as ``(rows, cols, bands)`` of the regular tile."""
        width, height = self.tile_size
        if self.fully_convolutional:
            image: npt.NDArray[Any] = array[0]
            return image[:, :, None] if image.ndim == 2 else image
        return array.reshape(height, width, -1)


# --------------------------------------------------------------------------------- helpers
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _yield_to_the_model() -> None:
    """Lower the calling I/O thread's CPU priority (Linux, where threads have their own).

    TensorFlow keeps the cores busy most of the time; reads and writes only need the gaps
    to stay ahead of it, and must not slow it down.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            thread = threading.get_native_id()
            niceness = os.getpriority(os.PRIO_PROCESS, thread)
            os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness + IO_THREAD_NICENESS))


def _get(source: queue.Queue[Any], stop: threading.Event, stats: _Stats) -> Any:
    while True:
        try:
            return source.get(timeout=0.1)
        except queue.Empty:
            if stats.errors:
                raise stats.errors[0] from None
            if stop.is_set():
                return _END


def _put(target: queue.Queue[Any], item: Any, stop: threading.Event, stats: _Stats) -> None:
    while not stop.is_set():
        try:
            target.put(item, timeout=0.1)
            return
        except queue.Full:
            if stats.errors:
                raise stats.errors[0] from None


def _drain(source: queue.Queue[Any]) -> None:
    with contextlib.suppress(queue.Empty):
        while True:
            source.get_nowait()


def _read_source(files: list[gdal.Dataset], source: SourcePlan, window: Window) -> npt.NDArray[Any]:
    """Read ``window`` of every raster of a source, bands stacked, cast to the model's dtype."""
    if len(files) == 1:
        return read_window(files[0], window, fill_value=source.fill_value, dtype=source.dtype)
    array = np.empty((window.height, window.width, source.bands), dtype=source.dtype)
    band = 0
    for dataset, count in zip(files, source.file_bands, strict=True):
        array[:, :, band:band + count] = read_window(dataset, window, fill_value=source.fill_value, dtype=source.dtype)
        band += count
    return array


def _nodata_centres(array: npt.NDArray[Any], window: Window, starts: tuple[list[int], list[int]],
                    receptive_field: tuple[int, int], nodata: float) -> npt.NDArray[np.bool_]:
    """Per output pixel: True when a band of the source pixel under its centre is ``nodata``.

    ``array`` holds ``window`` of the source; ``starts`` are the patch start columns and
    rows of the output pixels (the centre pixel is ``start + rf // 2``). The rule depends
    on the pixel only, so the output does not depend on the tile size. The comparison is
    :func:`~otbtf_qgis.core.raster.nodata_mask`'s: a value the pixel type cannot hold
    (-9999 for uint16) matches no pixel.
    """
    cols = np.asarray(starts[0]) + receptive_field[0] // 2 - window.col_off
    rows = np.asarray(starts[1]) + receptive_field[1] // 2 - window.row_off
    centres = array[rows[:, None], cols[None, :]]
    return nodata_mask(centres, (nodata,) * centres.shape[2])


def _patches(array: npt.NDArray[Any], cols: npt.NDArray[Any], rows: npt.NDArray[Any],
             receptive_field: tuple[int, int]) -> npt.NDArray[Any]:
    """One ``(rf_y, rf_x, bands)`` patch per (row, col) start, as ``(rows·cols, rf_y, rf_x, bands)``."""
    rf_x, rf_y = receptive_field
    views = np.lib.stride_tricks.sliding_window_view(array, (rf_y, rf_x), axis=(0, 1))  # type: ignore[call-overload]
    patches = views[rows[:, None], cols[None, :]]  # (rows, cols, bands, rf_y, rf_x)
    return np.ascontiguousarray(patches.transpose(0, 1, 3, 4, 2)).reshape(-1, rf_y, rf_x, array.shape[2])


def _cast(data: npt.NDArray[Any], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """Cast model values to the output type: integers are rounded and clamped to the type's range."""
    if data.dtype == dtype:
        return data
    if dtype.kind in "iu" and data.dtype.kind == "f":
        limits = np.iinfo(dtype)
        rounded: npt.NDArray[Any] = np.clip(np.rint(data), limits.min, limits.max)
        return rounded.astype(dtype)
    return data.astype(dtype)


@contextlib.contextmanager
def _gdal_cache_limit() -> Iterator[None]:
    previous = gdal.GetCacheMax()
    user_set = bool(os.environ.get("GDAL_CACHEMAX") or gdal.GetConfigOption("GDAL_CACHEMAX"))
    if not user_set and previous > GDAL_CACHE_BYTES:
        gdal.SetCacheMax(GDAL_CACHE_BYTES)
    try:
        yield
    finally:
        if not user_set and previous > GDAL_CACHE_BYTES:
            gdal.SetCacheMax(previous)


def merged_creation_options(user_options: Sequence[str]) -> list[str]:
    """The default creation options with the user's replacing them key by key.

    ``ZSTD_LEVEL`` is dropped when the user picks another codec, and the block size
    when the output is not tiled.
    """
    merged: dict[str, str] = {}
    for option in (*DEFAULT_CREATION_OPTIONS, *user_options):
        key, _, value = option.partition("=")
        merged[key.strip().upper()] = value.strip()
    if merged.get("COMPRESS", "").upper() != "ZSTD":
        merged.pop("ZSTD_LEVEL", None)
    if merged.get("TILED", "NO").upper() not in {"YES", "TRUE", "ON", "1"}:
        merged.pop("BLOCKXSIZE", None)
        merged.pop("BLOCKYSIZE", None)
    return [f"{key}={value}" for key, value in merged.items()]


def _block_size(options: Sequence[str]) -> tuple[int, int]:
    values = dict(option.partition("=")[::2] for option in options)
    if values.get("TILED", "NO").upper() not in {"YES", "TRUE", "ON", "1"}:
        return (1, 1)
    try:
        return (int(values.get("BLOCKXSIZE", 256)), int(values.get("BLOCKYSIZE", 256)))
    except ValueError as exc:
        raise InputError(f"BLOCKXSIZE/BLOCKYSIZE must be integers, got {values}.", "CREATION_OPTIONS") from exc


# ---------------------------------------------------------------------------- preparation
def _open_sources(config: ServeConfig) -> list[tuple[list[RasterInfo], Any]]:
    opened = []
    for number, source in enumerate(config.sources, start=1):
        infos = [raster_info(file_path(path, "SOURCES"), "SOURCES") for path in source.paths]
        first = infos[0]
        for info in infos:
            _, dx, rx, _, ry, dy = info.geotransform
            if rx or ry or dx <= 0 or dy >= 0:
                raise InputError(f"source {number} ('{info.path}') is rotated or not north-up (geotransform "
                                 f"{list(info.geotransform)}). Warp it to a north-up grid (gdalwarp).", "SOURCES")
            if (info.width, info.height) != (first.width, first.height) or not np.allclose(
                    info.geotransform, first.geotransform, rtol=0, atol=1e-6 * abs(dx)):
                raise InputError(f"the rasters of source {number} do not share one grid: '{first.path}' is "
                                 f"{first.width}x{first.height} at {list(first.geotransform)}, '{info.path}' is "
                                 f"{info.width}x{info.height} at {list(info.geotransform)}.", "SOURCES")
        opened.append((infos, source))
    reference = opened[0][0][0]
    for infos, _ in opened[1:]:
        for info in infos:
            if not same_crs(reference.crs_wkt, info.crs_wkt):
                raise InputError(f"'{info.path}' is not in the CRS of '{reference.path}'. Reproject the sources to "
                                 "one CRS (gdalwarp -t_srs ...).", "SOURCES")
    return opened


def _assign_placeholders(config: ServeConfig, model: ServingModel, constants: set[str]) -> list[str]:
    # Sources go to image inputs ([batch, rows, cols, bands]) first, in the model's order.
    image_inputs = sorted((name for name in model.input_names() if name not in constants),
                          key=lambda name: len(model.inputs[name].shape) != 4)
    available = ", ".join(info.describe() for name, info in model.inputs.items() if name not in constants)
    given = [source.placeholder for source in config.sources]
    for name in given:
        if name and name not in model.inputs:
            raise InputError(f"the model has no input '{name}'. Its inputs are: {available}.", "PLACEHOLDERS")
        if name and name in constants:
            raise InputError(f"'{name}' is given both as a source placeholder and in USER_PLACEHOLDERS.",
                             "PLACEHOLDERS")
    if len(set(filter(None, given))) != len(list(filter(None, given))):
        raise InputError(f"two sources feed the same model input ({', '.join(given)}).", "PLACEHOLDERS")
    remaining = [name for name in image_inputs if name not in given]
    placeholders = []
    for name in given:
        if name:
            placeholders.append(name)
        elif remaining:
            placeholders.append(remaining.pop(0))
        else:
            raise InputError(f"{len(config.sources)} sources were given but the model takes {len(image_inputs)} "
                             f"image input(s): {available}.", "SOURCES")
    if remaining:
        missing = ", ".join(model.inputs[name].describe() for name in remaining)
        raise InputError(f"the model input(s) {missing} are not fed: add a source for each (SOURCES and "
                         "PLACEHOLDERS), or give a value in USER_PLACEHOLDERS (name=value).", "SOURCES")
    return placeholders


def _output_names(config: ServeConfig, model: ServingModel) -> list[str]:
    available = ", ".join(sorted(model.outputs))
    names = [n for n in config.output_names if n]
    if not names:
        default = model.metadata.default_output()
        if default and default in model.outputs:
            names = [default]
        elif len(model.outputs) == 1:
            names = list(model.outputs)
        else:
            raise InputError(f"choose the model output(s) to write. Available outputs: {available}.", "OUTPUT_NAMES")
    for name in names:
        if name not in model.outputs:
            raise InputError(f"'{name}' is not an output of the model's signature. Available outputs: {available}.",
                             "OUTPUT_NAMES")
    return names


def _check_input(number: int, info: TensorInfo, bands: int, model: ServingModel) -> None:
    if len(info.shape) != 4:
        raise InputError(f"the model input {info.describe()} fed by source {number} is not an image "
                         "[batch, rows, cols, bands]. Give it in USER_PLACEHOLDERS or feed another input.",
                         "PLACEHOLDERS")
    if np.dtype(info.dtype).kind not in "biuf":
        raise ModelError(f"the model input {info.describe()} does not take numbers.", "MODEL")
    expected = info.channels or model.metadata.inputs.get(info.name, {}).get("bands")
    if expected is not None and int(expected) != bands:
        raise InputError(f"source {number} has {bands} band(s) but the model input '{info.name}' takes "
                         f"{expected}. Give a raster with {expected} bands (or several rasters whose bands add up).",
                         "SOURCES")


def _receptive_field(config: ServeConfig, index: int, info: TensorInfo, model: ServingModel,
                     output_name: str) -> tuple[int, int]:
    given = config.sources[index].receptive_field_xy
    if given is not None:
        return given
    from_json = model.metadata.receptive_field(info.name, len(config.sources), output_name)
    if from_json is not None:
        return from_json
    height, width = info.spatial_shape
    if height is not None and width is not None:
        return (width, height)
    raise InputError(f"the receptive field of source {index + 1} (model input '{info.name}') is unknown: the model "
                     "has no otbtf_model.json and a dynamic input size. Give RFIELDS (e.g. 64).", "RFIELDS")


def _expression_field(config: ServeConfig, model: ServingModel, output_name: str, placeholders: list[str],
                      fields: list[tuple[int, int]], bands: list[int], constants: dict[str, npt.NDArray[Any]],
                      dtypes: list[str]) -> tuple[int, int]:
    given = config.expression_field_xy
    if not config.fully_convolutional:
        if given is not None and given != (1, 1):
            raise InputError(f"patch-based mode (FULLYCONV=false) computes one output pixel per patch: EFIELD must "
                             f"be 1, not {'x'.join(map(str, given))}.", "EFIELD")
        return (1, 1)
    if given is not None:
        return given
    from_json = model.metadata.expression_field(output_name)
    if from_json is not None:
        return from_json
    # Probe: the output size of the model on inputs of the receptive field is its expression field.
    inputs: dict[str, npt.NDArray[Any]] = {
        name: np.zeros((1, rf[1], rf[0], count), dtype=dtype)
        for name, rf, count, dtype in zip(placeholders, fields, bands, dtypes, strict=True)}
    try:
        result = model.run_once({**inputs, **constants})[output_name]
    except Exception as exc:  # any failure means the receptive field does not suit the model
        raise InputError(f"the model fails on inputs of its receptive field ({_first_line(exc)}). Check RFIELDS, "
                         "or give EFIELD.", "RFIELDS") from exc
    if result.ndim not in (3, 4) or min(result.shape[1:3]) < 1:
        raise InputError(f"the output '{output_name}' (shape {list(result.shape)}) is not an image: serve it in "
                         "patch-based mode (FULLYCONV=false).", "OUTPUT_NAMES")
    return (int(result.shape[2]), int(result.shape[1]))


def _check_geometry(config: ServeConfig, fields: list[tuple[int, int]], geometry: ServingGeometry) -> None:
    scale = geometry.spacing_scale
    ef = geometry.expression_field
    for index, rf in enumerate(fields):
        source = geometry.sources[index]
        for axis, grid, size in (("x", source.x, rf[0]), ("y", source.y, rf[1])):
            dim = 0 if axis == "x" else 1
            pad = geometry.padding(index)[dim]
            if pad < 0:
                need = size - pad
                raise InputError(
                    f"the receptive field of source {index + 1} ({size} pixels along {axis}) cannot cover the "
                    f"expression field: it needs at least 1 + (ef - 1) x spcscale x spacing ratio = 1 + "
                    f"({ef[dim]} - 1) x {float(scale):g} x {float(grid.scale):g} = {need} pixels (receptive field "
                    f"{'x'.join(map(str, rf))}, expression field {'x'.join(map(str, ef))}, spcscale {float(scale):g}, "
                    f"first source pixel size / this source's = {float(grid.scale):g}). Fix RFIELDS, EFIELD or "
                    "SPCSCALE.", "RFIELDS")
            footprint = footprint_length(ef[dim], scale, grid.scale)
            if config.fully_convolutional and footprint.denominator != 1:
                raise InputError(
                    f"{ef[dim]} output pixels (the expression field) cover "
                    f"{float(footprint):g} pixels of source {index + 1} along "
                    f"{axis}: tiles must cover whole source pixels. Choose SPCSCALE or EFIELD so that "
                    "EFIELD x SPCSCALE x (first source pixel size / source pixel size) is an integer.", "SPCSCALE")
    for dim, axis, size in ((0, "x", geometry.width), (1, "y", geometry.height)):
        if size > 0:
            continue
        grids = [s.x if dim == 0 else s.y for s in geometry.sources]
        for number, (grid, rf) in enumerate(zip(grids, fields, strict=True), start=1):
            if grid.size < rf[dim]:
                raise InputError(f"source {number} is {grid.size} pixels along {axis}, smaller than its receptive "
                                 f"field {rf[dim]}. Give a larger raster (or a smaller RFIELDS).", "SOURCES")
        start, end = common_extent(grids, [rf[dim] for rf in fields])
        if end <= start:
            raise InputError("the sources do not overlap (once each is shrunk by its receptive field "
                             f"along {axis}). Give sources that cover a common area larger than the receptive field.",
                             "SOURCES")
        raise InputError(f"the sources are too small along {axis}: once shrunk by the receptive field they leave "
                         f"{float((end - start) / geometry.spacing_scale):g} output pixels, less than the expression "
                         f"field {ef[dim]}.", "SOURCES")


def _tile_size(config: ServeConfig, geometry: ServingGeometry, sources: list[SourcePlan],
               inputs: list[TensorInfo], block_size: tuple[int, int], reporter: Reporter) -> tuple[int, int]:
    ef = geometry.expression_field
    scale = geometry.spacing_scale
    sizes = []
    for dim, length in ((0, geometry.width), (1, geometry.height)):
        fixed = None
        if config.fully_convolutional:
            for index, info in enumerate(inputs):
                static = info.spatial_shape[1 - dim]
                if static is None:
                    continue
                pad = geometry.padding(index)[dim]
                grid = geometry.sources[index].x if dim == 0 else geometry.sources[index].y
                tile = Fraction(static - pad) / (scale * grid.scale)
                if tile.denominator != 1 or tile <= 0 or int(tile) % ef[dim]:
                    raise InputError(f"the model input '{info.name}' has a fixed size {static} along "
                                     f"{'xy'[dim]}, which no tile of whole expression fields ({ef[dim]}) matches. "
                                     "Check RFIELDS and EFIELD.", "TILE_SIZE")
                fixed = int(tile)
        if fixed is not None:
            if config.tile_size and round_up(config.tile_size, ef[dim]) != fixed:
                reporter.warning(f"the model's input size is fixed: tiles are {fixed} output pixels along "
                                 f"{'xy'[dim]}, not TILE_SIZE {config.tile_size}.")
            sizes.append(fixed)
        elif not config.fully_convolutional:
            if config.tile_size:
                sizes.append(min(config.tile_size, length))
            else:
                patch_bytes = sum(s.receptive_field[0] * s.receptive_field[1] * s.bands * np.dtype(s.dtype).itemsize
                                  for s in sources)
                side = max(1, math.isqrt(max(1, PATCH_TILE_BYTES // patch_bytes)))
                sizes.append(min(side, length))
        elif config.tile_size:  # no bigger than the grid (a multiple of ef): larger tiles would only be padding
            sizes.append(min(round_up(config.tile_size, ef[dim]), max(length, ef[dim])))
        else:
            inputs_scale = [(scale * (s.x.scale if dim == 0 else s.y.scale), geometry.padding(i)[dim])
                            for i, s in enumerate(geometry.sources)]
            sizes.append(auto_tile_size(length, ef[dim], inputs_scale, MAX_INPUT_TILE, block_size[dim]))
    return (sizes[0], sizes[1])


def prepare(config: ServeConfig, reporter: Reporter | None = None) -> ServingPlan:
    """Resolve ``config`` against its rasters and model, and trace the model for the tiles.

    Sources given as pyotb objects are written to temporary files beside ``config.output``
    first; close the plan (:meth:`ServingPlan.close`) to remove them.

    Raises:
        InputError: a setting does not fit the rasters or the model (the message names it).
        ModelError: the model is not a usable SavedModel.
        RasterIOError: a source cannot be read or the output folder is not writable.
    """
    reporter = reporter or NullReporter()
    ensure_writable_parent(Path(config.output), "OUTPUT")
    if config.output_classes:
        ensure_writable_parent(Path(config.output_classes), "OUTPUT_CLASSES")
    scratch = ScratchRasters(Path(config.output).resolve().parent, reporter)
    try:
        files = dataclasses.replace(config, sources=tuple(
            dataclasses.replace(source, paths=scratch.paths(source.paths, "SOURCES")) for source in config.sources))
        plan = _prepare_files(files, reporter)
    except BaseException:
        scratch.close()
        raise
    plan.scratch = scratch
    return plan


def _prepare_files(config: ServeConfig, reporter: Reporter) -> ServingPlan:
    """:func:`prepare` once every source is a file."""
    opened = _open_sources(config)
    model = ServingModel(config.model)
    user_values = parse_user_placeholders(config.user_placeholders)
    for name in user_values:
        if name not in model.inputs:
            available = ", ".join(info.describe() for info in model.inputs.values())
            raise InputError(f"the model has no input '{name}'. Its inputs are: {available}.", "USER_PLACEHOLDERS")
    placeholders = _assign_placeholders(config, model, set(user_values))
    output_names = _output_names(config, model)
    inputs = [model.inputs[name] for name in placeholders]
    bands = [sum(info.bands for info in infos) for infos, _ in opened]
    for number, (info, count) in enumerate(zip(inputs, bands, strict=True), start=1):
        _check_input(number, info, count, model)
    fields = [_receptive_field(config, i, info, model, output_names[0]) for i, info in enumerate(inputs)]
    batch = 1
    constants_probe = {name: parse_constant(value, model.inputs[name], batch) for name, value in user_values.items()}
    ef = _expression_field(config, model, output_names[0], placeholders, fields, bands, constants_probe,
                           [info.dtype for info in inputs])
    scale = rational(config.spacing_scale)
    if scale is None:
        raise InputError(f"the spacing scale {config.spacing_scale} is not a simple fraction (e.g. 2, 0.5, 1/3).",
                         "SPCSCALE")
    reference = opened[0][0][0]
    geometries = []
    for number, ((infos, _), rf) in enumerate(zip(opened, fields, strict=True), start=1):
        raster = infos[0]
        try:
            grid_x, grid_y = axis_grids(reference.geotransform, raster.geotransform, raster.width, raster.height)
        except ValueError as exc:
            raise InputError(f"source {number} ('{raster.path}'): {exc}. Resample it to a pixel size that divides or "
                             "is a multiple of the first source's.", "SOURCES") from exc
        geometries.append(SourceGeometry(grid_x, grid_y, rf))
    geometry = ServingGeometry.build(geometries, ef, scale)
    _check_geometry(config, fields, geometry)
    sources = []
    for (infos, source), placeholder, rf, info in zip(opened, placeholders, fields, inputs, strict=True):
        nodata = None
        if source.use_nodata:
            nodata = source.nodata if source.nodata is not None else infos[0].common_nodata
        sources.append(SourcePlan(tuple(i.path for i in infos), tuple(i.bands for i in infos), placeholder, rf, nodata,
                                  info.dtype, infos[0]))
    if any(s.nodata is not None for s in sources):
        _check_background(config)
    options = merged_creation_options(config.creation_options)
    block_size = _block_size(options)
    tile_size = _tile_size(config, geometry, sources, inputs, block_size, reporter)
    batch = 1 if config.fully_convolutional else tile_size[0] * tile_size[1]
    constants = {name: parse_constant(value, model.inputs[name], batch) for name, value in user_values.items()}
    reporter.info(f"output grid {geometry.width}x{geometry.height}, tiles of {tile_size[0]}x{tile_size[1]} output "
                  f"pixels, receptive field(s) {', '.join('x'.join(map(str, f)) for f in fields)}, expression field "
                  f"{'x'.join(map(str, ef))}, output(s) {', '.join(output_names)}")
    return ServingPlan(config, model, sources, output_names, geometry, tile_size, constants, options, block_size)


def _check_background(config: ServeConfig) -> None:
    dtype = np.dtype(config.output_type)
    if dtype.kind in "iu":
        limits = np.iinfo(dtype)
        if not (limits.min <= config.background <= limits.max and float(config.background).is_integer()):
            raise InputError(f"BACKGROUND {config.background:g} cannot be stored as {dtype.name}. Choose a value in "
                             f"[{limits.min}, {limits.max}] or another OUTPUT_TYPE.", "BACKGROUND")


def _class_map_check(plan: ServingPlan) -> None:
    if plan.output_bands[0] < 2:
        raise InputError(f"the class map is the argmax of the first output's bands, but '{plan.output_names[0]}' has "
                         "one band. Choose an output with one band per class (e.g. softmax scores).",
                         "OUTPUT_CLASSES")


def serve(config: ServeConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Serve the whole output grid into ``config.output`` (and the class map, if asked).

    Returns:
        The summary of :meth:`ServingPlan.serve`.
    """
    return serve_region(config, None, config.output, reporter, config.output_classes)


def serve_region(config: ServeConfig, window: Window | None, output: str | os.PathLike[str],
                 reporter: Reporter | None = None, output_classes: str = "") -> dict[str, Any]:
    """Serve one region of the output grid (``None``: all of it) into its own file.

    Region files mosaicked with :func:`write_mosaic_vrt` equal the single-file output.
    """
    reporter = reporter or NullReporter()
    with prepare(config, reporter.sub(0.0, 0.05)) as plan:
        if output_classes:
            _class_map_check(plan)
        return plan.serve(output, window, output_classes, reporter.sub(0.05, 1.0))


def write_mosaic_vrt(paths: Sequence[str | os.PathLike[str]], vrt_path: str | os.PathLike[str]) -> Path:
    """Mosaic region files (same grid, disjoint regions) into one VRT.

    Raises:
        RasterIOError: when GDAL cannot build the VRT.
    """
    if not paths:
        raise InputError("no region file to mosaic.", "INPUT")
    try:
        dataset = gdal.BuildVRT(os.fspath(vrt_path), [os.fspath(p) for p in paths])
    except RuntimeError as exc:
        raise RasterIOError(f"cannot build the mosaic '{vrt_path}': {exc}", "OUTPUT") from exc
    if dataset is None:
        raise RasterIOError(f"cannot build the mosaic '{vrt_path}'.", "OUTPUT")
    dataset.FlushCache()
    dataset = None
    return Path(vrt_path)


def run(config: ServeConfig, reporter: Reporter) -> dict[str, Any]:
    """The ``modelserve`` worker command: :func:`serve`, TensorFlow set to compute tiles concurrently."""
    configure_threads()
    return serve(config, reporter)
