"""Patches extraction: cut the patch of every source around every point into patches-images.

For each point and each source, the patch of the source's size around the point starts
at the point's pixel minus ``size // 2`` (OTBTF's rule, see :mod:`otbtf_qgis.core.data.grid`);
points are reprojected to each source's CRS first. A point is kept only when its patch
lies fully inside every source and holds none of the sources' nodata (a pixel is nodata
when any band equals that band's nodata value); the others are counted per reason.
Samples are stored in a spatial order (chunk by chunk of the first source, see below),
the same for every source and the class labels: sample ``i`` belongs to the point whose
id is ``point_ids[i]`` in the manifest.

Output (``docs/formats.md``): one ``<name>_patches.tif`` per source (width = patch x,
height = N x patch y, the source's bands and dtype), ``labels.tif`` (1 x N, int32) with
the class field, and ``manifest.json``. String classes are numbered alphabetically
(or after the ``OTBTF_CLASS_NAMES`` recorded by patches selection), integer classes keep
their value; the mapping is in the manifest.

Reads are grouped by raster blocks: points are bucketed by the block-aligned chunk of
the first source their patch starts in; each group of points is read with one request
per source when its patches cover their bounding box densely enough (GeoTIFF blocks are
then decoded on all cores). While a background thread reads the next group, the patches
of this one are cut from memory and appended to the outputs, about 1 MiB at a time so
that each slice is written while still in the CPU cache, straight to the file
(:mod:`otbtf_qgis.core.io.striped_tiff`). Memory stays bounded by the group size.
Patches with nodata are dropped from each slice before it is written: a striped
patches-image ends at its last row when finalized. Only complex sources, written through
GDAL, need the output size beforehand: then the sources that have nodata are read once
more first to find the rejected points.

From Python, sources may also be pyotb objects: they are written by OTB to temporary
files beside the output folder for the call (see :mod:`otbtf_qgis.core.io.pyotb_inputs`), and
the manifest names them ``pyotb:<application>``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from osgeo import gdal

from otbtf_qgis.core.data.formats import (
    CLASS_KEY,
    IGNORE_LABEL_ITEM,
    LABELS_FILE,
    MANIFEST_NAME,
    PATCHES_FORMAT,
    check_key_name,
    check_output_folder,
    patches_file_name,
    write_json,
)
from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.jobs.configs.patchesextraction import PatchesExtractionConfig
from otbtf_qgis.core.data.grid import centre_pixel, geo_to_pixel, patch_start
from otbtf_qgis.core.jobs.params import parse_nodata, parse_sizes, per_source
from otbtf_qgis.core.data.labels import ClassLabels, class_labels, mapping_from_names, names_from_metadata
from otbtf_qgis.core.progress import NullReporter, Reporter
from otbtf_qgis.core.io.pyotb_inputs import ScratchRasters, file_path
from otbtf_qgis.core.io.raster import GeoTiffWriter, RasterInfo, nodata_mask, open_raster, raster_info, read_window
from otbtf_qgis.core.jobs.outputs import atomic_output
from otbtf_qgis.core.io.striped_tiff import StripedTiffWriter
from otbtf_qgis.core.io.striped_tiff import supports as supports_striped
from otbtf_qgis.core.io.vector import PointTable, read_points, transform_xy
from otbtf_qgis.core.io.windows import Window, round_up

Array = npt.NDArray[Any]
IntArray = npt.NDArray[np.int64]

#: Target size (pixels per side) of the chunks reads are grouped by, rounded to whole blocks.
CHUNK_PIXELS = 1024
#: Below this share of a chunk's bounding box covered by patches, patches are read one by one.
DENSE_COVERAGE = 0.25
#: Patches-images are striped, with about this many bytes per strip (at least one patch).
STRIP_BYTES = 64 << 10
#: Patches read at once per source (bounds memory).
GROUP_BYTES = 64 << 20
#: Patches cut and written at once: few enough to be still in the CPU cache when written
#: (writing from memory just filled costs a fraction of writing from a big cold buffer).
WRITE_BYTES = 1 << 20


@dataclass(frozen=True)
class SourceSpec:
    """One source to extract.

    Attributes:
        name: Dataset key (file ``<name>_patches.tif``).
        path: The raster.
        patch_size: ``(x, y)``.
        nodata: Per band nodata value used to reject patches (``None`` entries: no check).
    """

    name: str
    path: str
    patch_size: tuple[int, int]
    nodata: tuple[float | None, ...]


def default_source_names(count: int) -> list[str]:
    """``xs``, ``xs2``, ``xs3``, … (OTBTF's convention for the first source is ``xs``)."""
    return ["xs" if i == 0 else f"xs{i + 1}" for i in range(count)]


def parse_source_names(text: str, count: int, reserved: Sequence[str] = ()) -> list[str]:
    """One name per source from a per-source list (see :mod:`otbtf_qgis.core.jobs.params`), or the defaults.

    An empty entry takes the default name of its position (``xs``, ``xs2``, …).

    Raises:
        InputError: wrong count, invalid, duplicate or reserved names (``SOURCE_NAMES``).
    """
    defaults = default_source_names(count)
    names = [name or default for name, default in
             zip(per_source(text, count, "SOURCE_NAMES", repeat=False), defaults, strict=True)]
    for name in names:
        check_key_name(name, "SOURCE_NAMES")
        if name in reserved:
            raise InputError(f"'{name}' is the key of the class labels of FIELD; name the source otherwise.",
                             "SOURCE_NAMES")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"names must be unique, {', '.join(duplicates)} is repeated.", "SOURCE_NAMES")
    return names


def source_nodata(text: str, infos: Sequence[RasterInfo]) -> list[tuple[float | None, ...]]:
    """Nodata per band of each source from a per-source list: a number, ``none``, or empty (the raster's own).

    Raises:
        InputError: a bad entry or a count that is neither 1 nor the number of sources (``NODATA``).
    """
    result: list[tuple[float | None, ...]] = []
    for entry, info in zip(per_source(text, len(infos), "NODATA"), infos, strict=True):
        value, use = parse_nodata(entry)
        if not use:
            result.append((None,) * info.bands)
        elif value is None:
            result.append(info.nodata)
        else:
            result.append((value,) * info.bands)
    return result


def _nodata_for_manifest(values: tuple[float | None, ...]) -> Any:
    """One value, or a list per band when they differ; NaN (not JSON) is written as null."""
    written = [None if v is None or math.isnan(v) else v for v in values]
    return written[0] if len(set(written)) == 1 else written


@dataclass
class _SourcePlan:
    spec: SourceSpec
    info: RasterInfo
    cols: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    rows: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    inside: npt.NDArray[np.bool_] = field(default_factory=lambda: np.empty(0, bool))
    metadata: dict[str, str] = field(default_factory=dict)


def _locate(points: PointTable, plan: _SourcePlan, reporter: Reporter) -> None:
    """Patch start of every point in the source's grid, and whether the patch is inside the raster."""
    info = plan.info
    if not points.crs_wkt and info.crs_wkt:
        reporter.warning("POINTS has no CRS: its coordinates are taken to be in the CRS of "
                         f"'{plan.spec.path}'.")
    x, y = transform_xy(points.x, points.y, points.crs_wkt, info.crs_wkt)
    u, v = geo_to_pixel(info.geotransform, x, y)
    finite = np.isfinite(u) & np.isfinite(v)
    u = np.where(finite, u, -1e9)
    v = np.where(finite, v, -1e9)
    pixel_col, pixel_row = centre_pixel(u), centre_pixel(v)
    psx, psy = plan.spec.patch_size
    plan.cols = patch_start(pixel_col, psx)
    plan.rows = patch_start(pixel_row, psy)
    plan.inside = (finite & (plan.cols >= 0) & (plan.rows >= 0)
                   & (plan.cols + psx <= info.width) & (plan.rows + psy <= info.height))
    centre_inside = finite & (pixel_col >= 0) & (pixel_row >= 0) & (pixel_col < info.width) & (pixel_row < info.height)
    if not centre_inside.any():
        xmin, ymin, xmax, ymax = info.extent
        raise InputError(
            f"none of the {len(points)} points falls on the source '{plan.spec.name}' ({plan.spec.path}): the raster "
            f"covers x {xmin:g}..{xmax:g}, y {ymin:g}..{ymax:g} in its CRS, the points x {np.nanmin(x):g}.."
            f"{np.nanmax(x):g}, y {np.nanmin(y):g}..{np.nanmax(y):g}. Check that POINTS and SOURCES cover the "
            "same area and that the layer's CRS is right.", "POINTS")


def _chunk_shape(info: RasterInfo) -> tuple[int, int]:
    """Chunk ``(width, height)``: about :data:`CHUNK_PIXELS` per side, in whole blocks."""
    block_w, block_h = info.block_size
    if block_w >= info.width:  # striped: chunks are bands of whole rows
        rows = max(1, (CHUNK_PIXELS * CHUNK_PIXELS) // max(info.width, 1))
        return info.width, round_up(rows, block_h)
    return round_up(CHUNK_PIXELS, block_w), round_up(CHUNK_PIXELS, block_h)


def _open_for_reading(path: str) -> Any:
    """The source, opened so that GeoTIFF reads spanning several blocks decode them on all cores."""
    driver = gdal.IdentifyDriverEx(path, gdal.OF_RASTER)
    threads = driver is not None and driver.ShortName == "GTiff"
    return open_raster(path, "SOURCES", ["NUM_THREADS=ALL_CPUS"] if threads else [])


def _patch_bytes(plan: _SourcePlan) -> int:
    return plan.spec.patch_size[0] * plan.spec.patch_size[1] * plan.info.bands * np.dtype(plan.info.dtype).itemsize


def chunk_groups(plan: _SourcePlan, points: IntArray, max_group: int) -> list[IntArray]:
    """Split ``points`` into spatially compact groups: the output order of the samples.

    Points are bucketed by the block-aligned chunk of the raster their patch starts in
    (chunks in row-major order), sorted by row then column inside a chunk, and buckets
    are cut into groups of at most ``max_group`` points (memory bound).
    """
    cols, rows = plan.cols[points], plan.rows[points]
    chunk_w, chunk_h = _chunk_shape(plan.info)
    keys = (rows // chunk_h) * (plan.info.width // chunk_w + 1) + cols // chunk_w
    order = np.lexsort((cols, rows, keys))
    groups: list[IntArray] = []
    for bucket in np.split(points[order], np.flatnonzero(np.diff(keys[order])) + 1):
        groups.extend(bucket[start:start + max_group] for start in range(0, len(bucket), max_group))
    return groups


def _scratch(buffers: dict[str, Array], name: str, shape: tuple[int, ...], dtype: Any) -> Array:
    """A C-contiguous array of ``shape`` carved from a reusable buffer (fresh memory costs page faults)."""
    size = int(np.prod(shape))
    buffer = buffers.get(name)
    if buffer is None or buffer.size < size or buffer.dtype != np.dtype(dtype):
        buffer = buffers[name] = np.empty(size, dtype=dtype)
    return buffer[:size].reshape(shape)


@dataclass
class GroupRead:
    """What was read for one group of points of one source: the patches, or a region to cut them from.

    Attributes:
        patches: ``(n, psy, psx, bands)`` when the patches were read one by one, else ``None``.
        region: The bounding box of the patches, read in one request, else ``None``.
        cols: Column of each patch in ``region``.
        rows: Row of each patch in ``region``.
    """

    patches: Array | None
    region: Array | None = None
    cols: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)


def read_group_data(dataset: Any, plan: _SourcePlan, points: IntArray,
                    buffers: dict[str, Array] | None = None) -> GroupRead:
    """Read what the patches of ``points`` (indices into the plan) are cut from (see :func:`cut_patches`).

    When the patches cover at least :data:`DENSE_COVERAGE` of their bounding box, the box
    is read in one request; otherwise the patches are read one by one. With ``buffers``,
    memory is reused between calls (the result is then only valid until the next call).
    """
    buffers = {} if buffers is None else buffers
    psx, psy = plan.spec.patch_size
    cols, rows = plan.cols[points], plan.rows[points]
    left, top = int(cols.min()), int(rows.min())
    width, height = int(cols.max()) + psx - left, int(rows.max()) + psy - top
    bands = plan.info.bands
    if len(points) * psx * psy >= DENSE_COVERAGE * width * height:
        region = read_window(dataset, Window(left, top, width, height),
                             out=_scratch(buffers, "region", (height, width, bands), plan.info.dtype))
        return GroupRead(None, region, (cols - left).tolist(), (rows - top).tolist())
    patches = _scratch(buffers, "patches", (len(points), psy, psx, bands), plan.info.dtype)
    for index, (col, row) in enumerate(zip(cols.tolist(), rows.tolist(), strict=True)):
        read_window(dataset, Window(col, row, psx, psy), out=patches[index])
    return GroupRead(patches)


def cut_patches(data: GroupRead, plan: _SourcePlan, buffers: dict[str, Array] | None = None, start: int = 0,
                stop: int | None = None) -> Array:
    """Patches ``[start, stop)`` (default: all) of a :class:`GroupRead`, as ``(n, psy, psx, bands)``.

    With ``buffers``, memory is reused between calls (the result is then only valid until
    the next call).
    """
    if stop is None:
        stop = len(data.cols) if data.patches is None else len(data.patches)
    if data.patches is not None:
        return data.patches[start:stop]
    assert data.region is not None
    psx, psy = plan.spec.patch_size
    patches = _scratch({} if buffers is None else buffers, "patches", (stop - start, psy, psx, plan.info.bands),
                       plan.info.dtype)
    region = data.region
    for index, (col, row) in enumerate(zip(data.cols[start:stop], data.rows[start:stop], strict=True)):
        patches[index] = region[row:row + psy, col:col + psx]
    return patches


def read_group(dataset: Any, plan: _SourcePlan, points: IntArray, buffers: dict[str, Array] | None = None) -> Array:
    """The patches of ``points`` (indices into the plan), as ``(n, psy, psx, bands)``.

    :func:`read_group_data` then :func:`cut_patches`; with ``buffers``, memory is reused
    between calls (the result is then only valid until the next call).
    """
    buffers = {} if buffers is None else buffers
    return cut_patches(read_group_data(dataset, plan, points, buffers), plan, buffers)


def nodata_free(patches: Array, nodata: tuple[float | None, ...]) -> npt.NDArray[np.bool_]:
    """Per patch of ``(n, rows, cols, bands)``: True when no pixel is nodata (see :func:`nodata_mask`)."""
    return ~nodata_mask(patches, nodata).any(axis=(1, 2))  # type: ignore[no-any-return]


class _GdalAppender:
    """:class:`GeoTiffWriter` behind the appending interface of :class:`StripedTiffWriter` (complex pixels)."""

    def __init__(self, writer: GeoTiffWriter) -> None:
        self.writer = writer
        self.rows_written = 0

    def append(self, rows: Array) -> None:
        self.writer.write(Window(0, self.rows_written, rows.shape[1], len(rows)), rows)
        if self.writer.dataset is not None:  # write to disk now, while the next group is read
            self.writer.dataset.FlushCache()
        self.rows_written += len(rows)

    def finalize(self) -> Path:
        return self.writer.finalize()

    def abort(self) -> None:
        self.writer.abort()


def _patches_writer(plan: _SourcePlan, n: int, path: Path) -> StripedTiffWriter | _GdalAppender:
    """A striped, pixel-interleaved patches-image writer for up to ``n`` patches, appended in order.

    The striped writer ends the image at the last patch appended; GDAL's (complex pixels)
    needs exactly ``n``.

    Uncompressed: patches-images are read whole for training, where decompressing would
    cost more than the disk it saves. Strips of about :data:`STRIP_BYTES` keep reading
    one patch cheap.
    """
    psx, psy = plan.spec.patch_size
    rows_per_strip = min(psy * max(1, STRIP_BYTES // max(_patch_bytes(plan), 1)), n * psy)
    if supports_striped(plan.info.dtype):
        return StripedTiffWriter(path, psx, n * psy, plan.info.bands, plan.info.dtype, rows_per_strip,
                                 parameter="OUTPUT_DIR")
    options = ["INTERLEAVE=PIXEL", f"BLOCKYSIZE={rows_per_strip}", "BIGTIFF=IF_SAFER"]
    return _GdalAppender(GeoTiffWriter(path, psx, n * psy, plan.info.bands, plan.info.dtype,
                                       (0.0, 1.0, 0.0, 0.0, 0.0, 1.0), creation_options=options,
                                       parameter="OUTPUT_DIR"))


T = TypeVar("T")


def _read_ahead(reader: ThreadPoolExecutor, groups: list[IntArray], read: Callable[[int, IntArray], T],
                reporter: Reporter) -> Iterator[T]:
    """Yield ``read(number, group)`` for each group, the next one being read in ``reader`` meanwhile.

    ``read`` must alternate between two sets of buffers by ``number % 2``: the result of
    group ``k`` stays valid while group ``k + 1`` is read.
    """
    pending = reader.submit(read, 0, groups[0]) if groups else None
    for number in range(len(groups)):
        reporter.check_canceled()
        assert pending is not None
        result = pending.result()
        pending = reader.submit(read, number + 1, groups[number + 1]) if number + 1 < len(groups) else None
        try:
            yield result
        except BaseException:
            if pending is not None:
                pending.cancel()
            raise


@dataclass(frozen=True)
class ExtractionResult:
    """What an extraction kept and why it rejected the others.

    Attributes:
        n_samples: Kept points.
        point_ids: Ids of the kept points, in order (sample ``i`` = ``point_ids[i]``).
        rejected: Count per reason: ``no_geometry``, ``no_class``, ``outside``, ``nodata``.
        class_labels: The class field's labels (``None`` without field).
        files: Written file per key.
        infos: Description of each source raster, by name.
        metadata: GDAL metadata items of each source raster, by name.
    """

    n_samples: int
    point_ids: list[int]
    rejected: dict[str, int]
    class_labels: ClassLabels | None
    files: dict[str, Path]
    infos: dict[str, RasterInfo]
    metadata: dict[str, dict[str, str]]

    def summary(self) -> str:
        """``kept N samples, rejected M: a outside, b nodata, …`` for the log."""
        return (f"kept {self.n_samples} samples, rejected {sum(self.rejected.values())}: "
                + ", ".join(f"{count} {reason}" for reason, count in self.rejected.items()))


def extract_patches(sources: Sequence[SourceSpec], points_path: str, class_field: str,
                    outputs: dict[str, Path], labels_output: Path | None,
                    reporter: Reporter | None = None) -> ExtractionResult:
    """Extract the patches of ``sources`` at the points of ``points_path`` into patches-images.

    Args:
        sources: The sources (names must be keys of ``outputs``).
        points_path: The point layer.
        class_field: Optional class field ("" for none).
        outputs: Destination file per source name.
        labels_output: Destination of the 1 x N class image (required with ``class_field``).
        reporter: Progress and cancel.

    Raises:
        InputError: bad points, field, or no sample kept (with the count per reason).
        RasterIOError: a source cannot be read or an output written.
    """
    reporter = reporter or NullReporter()
    points = read_points(points_path, [class_field] if class_field else [], "POINTS", "FIELD")
    reporter.info(f"{len(points)} points read from POINTS")
    datasets = [_open_for_reading(spec.path) for spec in sources]
    plans = [_SourcePlan(spec, RasterInfo.from_dataset(dataset, spec.path), metadata=dict(dataset.GetMetadata() or {}))
             for spec, dataset in zip(sources, datasets, strict=True)]
    rejected = {"no_geometry": points.skipped, "no_class": 0, "outside": 0, "nodata": 0}
    keep = np.ones(len(points), dtype=bool)
    labels = None
    has_class = np.ones(len(points), dtype=bool)
    if class_field:
        has_class = np.array([v is not None for v in points.values[class_field]], dtype=bool)
        rejected["no_class"] = int((~has_class).sum())
        keep &= has_class
        if not has_class.any():
            raise InputError(f"no point has a value in the field '{class_field}'.", "FIELD")
        labels = class_labels([v for v in points.values[class_field] if v is not None], points.kinds[class_field],
                              "FIELD", names_from_metadata(points.metadata))
    for plan in plans:
        _locate(points, plan, reporter)
    inside = np.logical_and.reduce([plan.inside for plan in plans])
    rejected["outside"] = int((keep & ~inside).sum())
    keep &= inside
    candidates = np.flatnonzero(keep)
    if len(candidates) == 0:
        raise _nothing_kept(len(points) + points.skipped, rejected)
    reporter.progress(0.05)
    patch_bytes = max(_patch_bytes(plan) for plan in plans)
    groups = chunk_groups(plans[0], candidates, max(1, GROUP_BYTES // patch_bytes))
    # Two sets of buffers: the next group is read (GDAL releases the GIL) while this one is written.
    buffers: list[list[dict[str, Array]]] = [[{} for _ in plans], [{} for _ in plans]]
    checked = [i for i, plan in enumerate(plans) if any(v is not None for v in plan.spec.nodata)]
    # The striped writer learns its height when finalized: patches with nodata are dropped while writing.
    # GDAL's writer (complex pixels) must know it first, so then the rejected points are found beforehand.
    known_size = bool(checked) and not all(supports_striped(plan.info.dtype) for plan in plans)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="otbtf-read") as reader:
        if known_size:
            part = reporter.sub(0.05, 0.45)

            def clean_of(number: int, group: IntArray) -> npt.NDArray[np.bool_]:
                clean = np.ones(len(group), dtype=bool)
                for index in checked:
                    patches = read_group(datasets[index], plans[index], group, buffers[number % 2][index])
                    clean &= nodata_free(patches, plans[index].spec.nodata)
                return clean

            for number, clean in enumerate(_read_ahead(reader, groups, clean_of, reporter)):
                rejected["nodata"] += int((~clean).sum())
                groups[number] = groups[number][clean]
                part.progress((number + 1) / len(groups))
            groups = [group for group in groups if len(group)]
            if not groups:
                raise _nothing_kept(len(points) + points.skipped, rejected)
            checked = []  # every patch left is clean
        max_points = sum(len(group) for group in groups)
        writers = [_patches_writer(plan, max_points, outputs[plan.spec.name]) for plan in plans]
        part = reporter.sub(0.45 if known_size else 0.05, 0.97)
        # Slices of about WRITE_BYTES for all the sources together, cut then written while still in the CPU cache.
        step = max(1, WRITE_BYTES // sum(_patch_bytes(plan) for plan in plans))
        kept: list[IntArray] = []

        def data_of(number: int, group: IntArray) -> list[GroupRead]:
            return [read_group_data(dataset, plan, group, buffer)
                    for plan, dataset, buffer in zip(plans, datasets, buffers[number % 2], strict=True)]

        try:
            # The reader thread only reads (GDAL decodes while this thread cuts and writes the previous group).
            for number, data in enumerate(_read_ahead(reader, groups, data_of, reporter)):
                group = groups[number]
                for start in range(0, len(group), step):
                    stop = min(len(group), start + step)
                    patches = [cut_patches(source_data, plan, buffer, start, stop)
                               for plan, source_data, buffer in zip(plans, data, buffers[number % 2], strict=True)]
                    clean = np.ones(stop - start, dtype=bool)
                    for index in checked:
                        clean &= nodata_free(patches[index], plans[index].spec.nodata)
                    n_clean = int(clean.sum())
                    rejected["nodata"] += stop - start - n_clean
                    if n_clean == 0:
                        continue
                    kept.append(group[start:stop] if n_clean == stop - start else group[start:stop][clean])
                    for plan, writer, source_patches in zip(plans, writers, patches, strict=True):
                        if n_clean < stop - start:
                            source_patches = source_patches[clean]
                        writer.append(source_patches.reshape(-1, plan.spec.patch_size[0], plan.info.bands))
                part.progress((number + 1) / len(groups))
            if not kept:
                raise _nothing_kept(len(points) + points.skipped, rejected)
            for writer in writers:
                writer.finalize()
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
    kept_points = np.concatenate(kept)
    files: dict[str, Path] = {plan.spec.name: outputs[plan.spec.name] for plan in plans}
    if labels is not None:
        assert labels_output is not None
        # labels.codes has one entry per point with a class, in layer order.
        code_of_point = np.full(len(points), -1, np.int64)
        code_of_point[has_class] = labels.codes
        class_image = code_of_point[kept_points].astype(np.int32).reshape(-1, 1, 1)
        with GeoTiffWriter(labels_output, 1, len(class_image), 1, np.int32, (0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
                           creation_options=["BIGTIFF=IF_SAFER"], parameter="OUTPUT_DIR") as labels_writer:
            labels_writer.write(Window(0, 0, 1, len(class_image)), class_image)
        files[CLASS_KEY] = labels_output
    reporter.progress(1.0)
    return ExtractionResult(len(kept_points), [int(i) for i in points.ids[kept_points]], rejected, labels, files,
                            {p.spec.name: p.info for p in plans}, {p.spec.name: p.metadata for p in plans})


def _nothing_kept(n_points: int, rejected: dict[str, int]) -> InputError:
    reasons = {
        "no_geometry": "without point geometry",
        "no_class": "without class value",
        "outside": "with a patch leaving a source",
        "nodata": "with nodata in a patch",
    }
    detail = ", ".join(f"{count} {reasons[reason]}" for reason, count in rejected.items() if count)
    return InputError(f"no sample kept: all {n_points} points were rejected ({detail}). Check the patch sizes, the "
                      "nodata values and that the points lie well inside the sources.", "POINTS")


def source_specs(config: PatchesExtractionConfig) -> list[SourceSpec]:
    """Check the sources, names, sizes and nodata of a config; return one spec per source.

    Raises:
        InputError / RasterIOError: naming the bad parameter.
    """
    if not config.sources:
        raise InputError("no source raster given. Choose at least one raster.", "SOURCES")
    paths = [file_path(source, "SOURCES") for source in config.sources]
    infos = [raster_info(path, "SOURCES") for path in paths]
    sizes = parse_sizes(config.patch_sizes, len(config.sources), "PATCH_SIZES")
    names = parse_source_names(config.source_names, len(config.sources), [CLASS_KEY] if config.class_field else [])
    nodata = source_nodata(config.nodata, infos)
    return [SourceSpec(name, path, size, values)
            for name, path, size, values in zip(names, paths, sizes, nodata, strict=True)]


def patches_extraction(config: PatchesExtractionConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run an extraction into ``config.output_dir`` (replaced atomically); return the manifest's summary.

    Raises:
        InputError: bad settings, an output folder that is not ours, or no sample kept.
        RasterIOError: a source cannot be read or the output written.
    """
    reporter = reporter or NullReporter()
    output_dir = check_output_folder(config.output_dir, "OUTPUT_DIR")
    with ScratchRasters(output_dir.resolve().parent, reporter) as scratch:
        files = dataclasses.replace(config, sources=scratch.paths(config.sources, "SOURCES"))
        return _extract_into(files, output_dir, scratch.descriptions, reporter)


def _extract_into(config: PatchesExtractionConfig, output_dir: Path, descriptions: dict[str, str],
                  reporter: Reporter) -> dict[str, Any]:
    """:func:`patches_extraction` once every source is a file (``descriptions`` names temporary ones)."""
    specs = source_specs(config)
    with atomic_output(output_dir, "OUTPUT_DIR") as temp:
        temp.mkdir()
        outputs = {spec.name: temp / patches_file_name(spec.name) for spec in specs}
        result = extract_patches(specs, config.points, config.class_field, outputs,
                                 temp / LABELS_FILE if config.class_field else None, reporter)
        class_mapping = result.class_labels.mapping if result.class_labels is not None else {}
        ignore_label = None
        for spec in specs:
            metadata = result.metadata[spec.name]
            names = names_from_metadata(metadata)
            if names and not class_mapping:
                class_mapping = mapping_from_names(names)
            if metadata.get(IGNORE_LABEL_ITEM, "").strip() and ignore_label is None:
                ignore_label = int(float(metadata[IGNORE_LABEL_ITEM]))
        manifest = {
            "format": PATCHES_FORMAT,
            "sources": [_source_entry(spec, result, descriptions) for spec in specs],
            "labels": ({"file": LABELS_FILE, "key": CLASS_KEY, "field": config.class_field, "dtype": "int32"}
                       if config.class_field else None),
            "class_mapping": class_mapping,
            "ignore_label": ignore_label,
            "n_samples": result.n_samples,
            "points": os.path.abspath(config.points.split("|")[0]),
            "point_ids": result.point_ids,
            "rejected": result.rejected,
        }
        write_json(temp / MANIFEST_NAME, manifest)
    reporter.info(result.summary())
    return {"output_dir": str(output_dir), "manifest": str(output_dir / MANIFEST_NAME),
            "n_samples": result.n_samples, "rejected": result.rejected,
            "class_mapping": class_mapping, "ignore_label": ignore_label,
            "files": {key: str(output_dir / path.name) for key, path in result.files.items()}}


def _source_entry(spec: SourceSpec, result: ExtractionResult, descriptions: dict[str, str]) -> dict[str, Any]:
    info = result.infos[spec.name]
    path = descriptions.get(spec.path) or os.path.abspath(spec.path)
    entry = {"name": spec.name, "key": spec.name, "path": path,
             "patch_size": list(spec.patch_size), "bands": info.bands, "dtype": info.dtype,
             "nodata": _nodata_for_manifest(spec.nodata), "file": patches_file_name(spec.name)}
    names = names_from_metadata(result.metadata[spec.name])
    if names:
        entry["class_names"] = names
    return entry


def run(config: PatchesExtractionConfig, reporter: Reporter) -> dict[str, Any]:
    """Worker entry point of ``patchesextraction``."""
    return patches_extraction(config, reporter)

