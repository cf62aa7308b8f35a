"""Serving a region of a plan: a reader thread, model threads and a writer thread joined by queues.

The stream is three stages joined by bounded queues, so memory does not depend on the
image size and reading, computing and writing overlap (GDAL and TensorFlow release the
GIL):

- a reader thread (its own GDAL datasets) reads each tile's input windows, already cast
  to the model's input dtype, and finds the output pixels whose input is nodata: those
  whose centre lies on a source pixel with a band equal to that source's nodata;
- model threads run the traced model (edge tiles are padded to the regular tile shape,
  so the model is traced once) or skip it when every pixel of the tile is nodata
  (OTBTF skips a tile whose input is entirely nodata; such tiles are skipped here too,
  and so are tiles whose pixels all fall on nodata or outside the MASK). There are two when
  TensorFlow's threads were split between two concurrent tiles
  (:func:`~otbtf_qgis.core.models.saved_model.configure_threads`, done by the worker), else
  one; with GPUs, one per GPU, each running the model on its GPU;
- a writer thread crops, casts and writes the tiles (and the class map), the nodata
  pixels (and those outside the MASK) set to BACKGROUND (the output's nodata), flushing
  whole blocks as it goes.

Since whether a pixel is nodata depends on that pixel only, the output does not depend on
the tile size, nodata included. The calling thread reports progress after each written
tile and checks for cancel.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from osgeo import gdal

from otbtf_qgis.core.io.raster import (
    GeoTiffWriter,
    nodata_mask,
    open_raster,
    publish_together,
    read_window,
    window_geotransform,
)
from otbtf_qgis.core.io.windows import Window, intersection
from otbtf_qgis.core.models.saved_model import on_device
from otbtf_qgis.core.progress import NullReporter, Reporter
from otbtf_qgis.core.serving.output import (
    band_descriptions,
    class_legend,
    gdal_cache_limit,
    output_nodata,
    output_scale,
    stored_type,
    to_output_type,
)
from otbtf_qgis.core.serving.plan import ServingPlan, SourcePlan

#: Tiles waiting between two stages: enough to keep each stage busy, bounded for memory.
QUEUE_DEPTH = 2
#: Niceness added to the reader and writer threads (see :func:`_yield_to_the_model`).
IO_THREAD_NICENESS = 5
_END = object()


class TileInputs(NamedTuple):
    """What the reader gives the model workers for one tile."""

    #: Model inputs, one per source; ``None`` when every output pixel is nodata (the model is skipped).
    arrays: list[npt.NDArray[Any]] | None
    #: ``(rows, cols)``, True on output pixels whose input is nodata (they get BACKGROUND); ``None`` if none.
    nodata: npt.NDArray[np.bool_] | None


@dataclass
class _Stats:
    """Timings and counts of one region, shared by the threads."""

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


def serve_plan(plan: ServingPlan, output: str | os.PathLike[str], window: Window | None = None,
               output_classes: str = "", reporter: Reporter | None = None) -> dict[str, Any]:
    """Serve ``window`` of the plan's output grid (default: all of it) into ``output``.

    Args:
        plan: From :func:`~otbtf_qgis.core.serving.plan.prepare`.
        output: The GeoTIFF to write (published only when complete); empty: only the class map.
        window: A region of the output grid, clipped to the grid (and to the plan's
            EXTENT); its pixels are those of the whole grid's output.
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
    region = plan.region(window)
    tiles = plan.tiles(region)
    started = time.perf_counter()
    geotransform = window_geotransform(plan.geotransform, region)
    writers: list[GeoTiffWriter] = []
    stats = _Stats()
    with gdal_cache_limit():
        try:
            data_writer = classes_writer = None
            if output:
                data_writer = output_writer(plan, Path(output), region, geotransform)
                writers.append(data_writer)
            if output_classes:
                classes_writer = class_writer(plan, Path(output_classes), region, geotransform)
                writers.append(classes_writer)
            _RegionStream(plan, region, data_writer, classes_writer, stats).run(tiles, reporter)
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        publish_together(writers)
    reporter.progress(1.0)
    seconds = time.perf_counter() - started
    return {
        "output": str(output) if output else None,
        "output_classes": str(output_classes) if output_classes else None,
        "width": region.width,
        "height": region.height,
        "geotransform": list(geotransform),
        "region": [region.col_off, region.row_off, region.width, region.height],
        **describe_plan(plan),
        "tiles": len(tiles),
        "skipped_tiles": stats.skipped,
        "seconds": round(seconds, 3),
        "read_seconds": round(stats.read, 3),
        "predict_seconds": round(stats.predict, 3),
        "write_seconds": round(stats.write, 3),
        "read_cpu_seconds": round(stats.read_cpu, 3),
        "write_cpu_seconds": round(stats.write_cpu, 3),
        "mpix_per_second": round(region.width * region.height / 1e6 / max(seconds, 1e-9), 3),
    }


def describe_plan(plan: ServingPlan) -> dict[str, Any]:
    """What a serving summary says of the plan, whichever region is served (JSON-serialisable)."""
    return {
        "bands": sum(plan.output_bands),
        "grid_size": [plan.geometry.width, plan.geometry.height],
        "output_names": list(plan.output_names),
        "placeholders": [s.placeholder for s in plan.sources],
        "receptive_fields": [list(s.receptive_field) for s in plan.sources],
        "expression_field": list(plan.geometry.expression_field),
        "spacing_scale": float(plan.geometry.spacing_scale),
        "fully_convolutional": plan.fully_convolutional,
        "tile_size": list(plan.tile_size),
        "model_workers": plan.workers,
        "devices": list(plan.devices),
        "nodata": output_nodata(plan.config.output_type, plan.config.background) if plan.has_background else None,
        "output_type": plan.config.output_type,
        "scale": output_scale(plan.config.output_type),
        "mask": plan.config.mask or None,
    }


def output_writer(plan: ServingPlan, path: Path, region: Window, geotransform: Sequence[float]) -> GeoTiffWriter:
    """The writer of the model outputs of ``region``: one band per output band, described."""
    descriptions = band_descriptions(plan.output_names, plan.output_bands, plan.model.metadata.class_names)
    output_type = plan.config.output_type
    nodata = output_nodata(output_type, plan.config.background) if plan.has_background else None
    writer = GeoTiffWriter(path, region.width, region.height, sum(plan.output_bands), stored_type(output_type),
                           geotransform, plan.crs_wkt, nodata, plan.creation_options, descriptions, plan.config.cog,
                           "OUTPUT")
    scale = output_scale(output_type)
    if scale is not None:
        writer.set_scale(scale)
    writer.set_metadata(plan.provenance())
    return writer


def class_writer(plan: ServingPlan, path: Path, region: Window, geotransform: Sequence[float]) -> GeoTiffWriter:
    """The writer of the class map of ``region``: paletted, with the class names."""
    dtype = plan.classes_dtype
    nodata = int(np.iinfo(dtype).max) if plan.has_background else None
    writer = GeoTiffWriter(path, region.width, region.height, 1, dtype, geotransform, plan.crs_wkt, nodata,
                           plan.creation_options, ["class"], plan.config.cog, "OUTPUT_CLASSES")
    metadata = plan.model.metadata
    names, colors = class_legend(metadata.class_names, metadata.class_colors, plan.output_bands[0])
    writer.set_color_table(colors, names)
    writer.set_metadata({**plan.provenance(), "otbtf_class_output": plan.output_names[0]})
    return writer


def open_sources(plan: ServingPlan) -> list[list[gdal.Dataset]]:
    """Open every raster of every source of ``plan`` (GDAL datasets are used by one thread at a time)."""
    return [[open_raster(path, "SOURCES") for path in source.paths] for source in plan.sources]

def read_tile(plan: ServingPlan, datasets: list[list[gdal.Dataset]], tile: Window) -> TileInputs:
    """Model inputs of output ``tile`` (padded to the regular shape) and its nodata pixels.

    Pixels outside the plan's MASK count as nodata; a tile wholly outside it is not read.

    Args:
        plan: The plan being served.
        datasets: From :meth:`open_sources`.
        tile: An output window of the grid, at most the tile size.
    """
    regular = Window(tile.col_off, tile.row_off, *plan.tile_size)
    arrays = []
    nodata: npt.NDArray[np.bool_] | None = None
    if plan.mask is not None:
        outside = ~plan.mask.inside(plan.geotransform, tile)
        if outside.all():
            return TileInputs(None, outside)
        nodata = outside
    for index, (source, files) in enumerate(zip(plan.sources, datasets, strict=True)):
        if plan.fully_convolutional:
            window = plan.geometry.input_window(index, regular)
        else:
            cols, rows = plan.geometry.patch_starts(index, regular)
            rf_x, rf_y = source.receptive_field
            window = Window(cols[0], rows[0], cols[-1] - cols[0] + rf_x, rows[-1] - rows[0] + rf_y)
        array = _read_source(files, source, window)
        if source.nodata is not None:
            starts = (plan.geometry.patch_starts(index, tile) if plan.fully_convolutional
                      else (cols[:tile.width], rows[:tile.height]))
            pixels = _nodata_centres(array, window, starts, source.receptive_field, source.nodata)
            nodata = pixels if nodata is None else nodata | pixels
            if nodata.all():
                return TileInputs(None, nodata)
        if plan.fully_convolutional:
            arrays.append(array[None])
        else:
            arrays.append(_patches(array, np.array(cols) - cols[0], np.array(rows) - rows[0],
                                   source.receptive_field))
    return TileInputs(arrays, nodata if nodata is not None and nodata.any() else None)


class _RegionStream:
    """The threads that serve one region of a plan into its writers."""

    def __init__(self, plan: ServingPlan, region: Window, data_writer: GeoTiffWriter | None,
                 classes_writer: GeoTiffWriter | None, stats: _Stats) -> None:
        self.plan = plan
        self.region = region
        self.data_writer = data_writer
        self.classes_writer = classes_writer
        self.writers = [w for w in (data_writer, classes_writer) if w is not None]
        self.stats = stats

    def run(self, tiles: list[Window], reporter: Reporter) -> None:
        """Run the reader, the model workers and the writer; report progress and check cancel meanwhile."""
        plan, stats = self.plan, self.stats
        read_queue: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH + plan.workers)
        write_queue: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH + plan.workers)
        stop = threading.Event()
        reader = threading.Thread(target=self._read_loop, args=(tiles, read_queue, stop),
                                  name="otbtf-serve-read", daemon=True)
        devices: list[str | None] = [*plan.devices] or [None] * plan.workers
        models = [threading.Thread(target=self._predict_loop, args=(read_queue, write_queue, stop, device),
                                   name=f"otbtf-serve-model-{k}", daemon=True) for k, device in enumerate(devices)]
        writer = threading.Thread(target=self._write_loop, args=(write_queue, stop),
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
                      device: str | None = None) -> None:
        """One model worker (on ``device``, if given): inputs from the reader, outputs to the writer (any order)."""
        stats = self.stats
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
                    with on_device(device):
                        outputs = self.plan.function(*inputs.arrays)
                    stats.predict += time.perf_counter() - started
                _put(target, (tile, outputs, inputs.nodata), stop, stats)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            stats.errors.append(exc)
            stop.set()

    def _read_loop(self, tiles: list[Window], out: queue.Queue[Any], stop: threading.Event) -> None:
        """The reader: each tile's inputs, read with this thread's own GDAL datasets."""
        stats = self.stats
        _yield_to_the_model()
        try:
            datasets = open_sources(self.plan)
            for tile in tiles:
                if stop.is_set():
                    return
                started, cpu = time.perf_counter(), time.thread_time()
                item = (tile, read_tile(self.plan, datasets, tile))
                stats.read += time.perf_counter() - started
                stats.read_cpu += time.thread_time() - cpu
                _put(out, item, stop, stats)
            _put(out, _END, stop, stats)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            stats.errors.append(exc)
            stop.set()

    def _write_loop(self, source: queue.Queue[Any], stop: threading.Event) -> None:
        """The writer: each tile cropped to the region, cast, written; whole blocks flushed as it goes."""
        stats, region, writers = self.stats, self.region, self.writers
        _yield_to_the_model()
        try:
            aligned = self._block_aligned()
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
                data, classes = self._tile_rasters(tile, outputs, nodata)
                if data is not None and self.data_writer is not None:
                    self.data_writer.write(part.relative_to(region), data[inside])
                if classes is not None and self.classes_writer is not None:
                    self.classes_writer.write(part.relative_to(region), classes[inside])
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

    def _block_aligned(self) -> bool:
        """True when every tile covers whole output blocks (they can be flushed one tile at a time)."""
        region = self.region
        block_x, block_y = self.plan.block_size
        tile_x, tile_y = self.plan.tile_size
        if region.col_off % tile_x or region.row_off % tile_y:  # the first tiles are cut by the region
            return False
        return (tile_x % block_x == 0 or tile_x >= region.width) and (tile_y % block_y == 0 or tile_y >= region.height)

    def _tile_rasters(self, tile: Window, outputs: list[npt.NDArray[Any]] | None,
                      nodata: npt.NDArray[np.bool_] | None
                      ) -> tuple[npt.NDArray[Any] | None, npt.NDArray[Any] | None]:
        """The output pixels of ``tile`` (cropped, cast, background where ``nodata``) and its class map, as written."""
        plan = self.plan
        output_type = plan.config.output_type
        dtype = stored_type(output_type)
        background = np.asarray(output_nodata(output_type, plan.config.background), dtype)
        with_data, with_classes = self.data_writer is not None, self.classes_writer is not None
        classes_dtype = plan.classes_dtype
        no_class = np.iinfo(classes_dtype).max
        shape = (tile.height, tile.width)
        if outputs is None:
            return (np.full((*shape, sum(plan.output_bands)), background, dtype) if with_data else None,
                    np.full(shape, no_class, classes_dtype) if with_classes else None)
        planes = [self._as_image(array)[:tile.height, :tile.width] for array in outputs]
        data = (to_output_type(planes[0] if len(planes) == 1 else np.concatenate(planes, axis=2), output_type)
                if with_data else None)
        classes = np.argmax(planes[0], axis=2).astype(classes_dtype) if with_classes else None
        if nodata is not None:
            if data is not None:
                data = np.where(nodata[:, :, None], background, data)
            if classes is not None:
                classes[nodata] = no_class
        return (data, classes)

    def _as_image(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """A model output as ``(rows, cols, bands)`` of the regular tile."""
        width, height = self.plan.tile_size
        if self.plan.fully_convolutional:
            image: npt.NDArray[Any] = array[0]
            return image[:, :, None] if image.ndim == 2 else image
        return array.reshape(height, width, -1)


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
    :func:`~otbtf_qgis.core.io.raster.nodata_mask`'s: a value the pixel type cannot hold
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
