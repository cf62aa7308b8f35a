"""Regions of an output grid served one file each, then mosaicked: the pieces of a distributed run.

A distributed run (:mod:`~otbtf_qgis.core.serving.distributed`) cuts the output grid into
regions of ``k × k`` whole tiles of the grid's tiling (:func:`region_side`,
:func:`region_windows`): a region then holds exactly the tiles a single run computes at the
same places, so its pixels are those of the single run, bit for bit. Each region is
served into its own files in a hidden folder beside the output,
``.<output name>.regions/<fingerprint>/`` (:class:`RegionFiles`); a small summary written
last marks a region as complete. The fingerprint (:func:`fingerprint`) changes with every
setting and file that changes pixels, so re-running the same job reuses complete regions
and a changed job starts afresh. :func:`publish_mosaic` assembles the region files through
a VRT into the requested GeoTIFF with the writer of a single run (same creation options,
COG, band descriptions, nodata, metadata, palette and class names).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from osgeo import gdal

import otbtf_qgis
from otbtf_qgis.core.errors import RasterIOError
from otbtf_qgis.core.io.pyotb_inputs import file_path
from otbtf_qgis.core.io.raster import GeoTiffWriter, gdal_array_type, publish_together
from otbtf_qgis.core.io.vector import parse_layer_source
from otbtf_qgis.core.io.windows import Window, tile_grid
from otbtf_qgis.core.jobs.configs.modelserve import ServeConfig
from otbtf_qgis.core.jobs.outputs import PARTIAL_MARK, atomic_output, remove_path
from otbtf_qgis.core.progress import NullReporter, Reporter
from otbtf_qgis.core.serving.output import block_size, gdal_cache_limit, merged_creation_options, write_mosaic_vrt

#: Settings that do not change the pixels of the regions (the output paths, where the job
#: runs, the final file's layout). Every other field is part of the fingerprint.
UNHASHED_FIELDS = frozenset({"output", "output_classes", "scheduler", "cog"})
#: Bytes of one strip copied from the mosaic into the final file.
MOSAIC_STRIP_BYTES = 32 << 20


def region_side(grid: tuple[int, int], tile: tuple[int, int], regions: int, max_pixels: int) -> int:
    """Side ``k`` (in tiles) of the square regions of ``k × k`` tiles cut from a grid.

    ``k`` is the largest side that still gives at least ``regions`` regions
    (``ceil(W / (k·tx)) · ceil(H / (k·ty)) >= regions``), so every worker gets several,
    and whose region has at most ``max_pixels`` pixels (``k²·tx·ty <= max_pixels``), so a
    lost region costs little; it is at least 1 (one tile per region).

    Args:
        grid: ``(W, H)`` output grid size.
        tile: ``(tx, ty)`` tile size of the grid's tiling.
        regions: Wished minimum number of regions.
        max_pixels: Most pixels in one region.
    """
    width, height = grid
    tile_x, tile_y = tile
    tiles_x, tiles_y = math.ceil(width / tile_x), math.ceil(height / tile_y)
    side = max(1, math.isqrt(max(1, max_pixels // (tile_x * tile_y))))
    side = min(side, max(tiles_x, tiles_y))
    while side > 1 and math.ceil(tiles_x / side) * math.ceil(tiles_y / side) < regions:
        side -= 1
    return side


def region_windows(grid: tuple[int, int], tile: tuple[int, int], side: int) -> list[tuple[int, int, Window]]:
    """The regions of ``side × side`` tiles covering the grid, row by row: ``(column, row, window)``.

    ``column`` and ``row`` number the regions; windows of the last column/row are clipped
    to the grid. Every window starts on a tile boundary.
    """
    width, height = grid
    step_x, step_y = side * tile[0], side * tile[1]
    return [(window.col_off // step_x, window.row_off // step_y, window)
            for window in tile_grid(width, height, step_x, step_y)]


def _stamp(path: Path) -> list[Any]:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def fingerprint(config: ServeConfig) -> str:
    """A hash of what decides the pixels of ``config``'s regions.

    The settings (all fields but :data:`UNHASHED_FIELDS`; which outputs are asked), the
    sources', the model's and the MASK's files (path, size, modification time) and the
    version of otbtf_qgis. Sources must be files (the distributed path writes pyotb objects first).
    """
    settings: dict[str, Any] = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)
                                if field.name not in UNHASHED_FIELDS and field.name not in {"sources", "model"}}
    settings["class_map"] = bool(config.output_classes)
    settings["probabilities"] = bool(config.output)
    settings["sources"] = [{**dataclasses.asdict(source), "paths": [_stamp(Path(file_path(p))) for p in source.paths]}
                           for source in config.sources]
    model = Path(config.model)
    settings["model"] = [_stamp(path) for path in sorted(model.rglob("*")) if path.is_file()]
    if config.mask:
        settings["mask_file"] = _stamp(Path(parse_layer_source(config.mask)[0]))
    settings["otbtf_qgis"] = otbtf_qgis.__version__
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def regions_root(output: str | os.PathLike[str]) -> Path:
    """The hidden folder of the region files of ``output``: ``.<name>.regions`` beside it."""
    path = Path(output).resolve()
    return path.with_name(f".{path.name}.regions")


@dataclasses.dataclass(frozen=True)
class RegionFiles:
    """The files of one region: its output, its class map (optional) and its summary.

    The summary is written last: a region is complete when it exists. A job without
    OUTPUT (class map only) has no ``output`` files, one without OUTPUT_CLASSES no
    ``classes`` files.
    """

    output: Path | None
    classes: Path | None
    summary: Path

    @classmethod
    def of(cls, folder: Path, column: int, row: int, with_classes: bool, with_output: bool) -> RegionFiles:
        """The files of region ``(column, row)`` in ``folder``."""
        stem = f"r_{column}_{row}"
        return cls(folder / f"{stem}.tif" if with_output else None,
                   folder / f"{stem}.classes.tif" if with_classes else None, folder / f"{stem}.json")

    def read_summary(self) -> dict[str, Any] | None:
        """The summary of a complete region (its files all there), else ``None``."""
        if any(path is not None and not path.is_file() for path in (self.output, self.classes)):
            return None
        try:
            summary: dict[str, Any] = json.loads(self.summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return summary

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write the summary (atomically): the region is complete."""
        with atomic_output(self.summary, "OUTPUT") as temp:
            temp.write_text(json.dumps(summary, default=str), encoding="utf-8")


def prepare_region_folder(output: str | os.PathLike[str], key: str) -> Path:
    """Create the region folder of ``output`` for fingerprint ``key``; clear what no run can reuse.

    Folders of other fingerprints (a changed job) and temporary files of killed tasks are
    removed; complete regions of ``key`` are kept.
    """
    root = regions_root(output)
    if root.is_dir():
        for other in root.iterdir():
            if other.name != key:
                remove_path(other)
    folder = root / key
    folder.mkdir(parents=True, exist_ok=True)
    for partial in folder.glob(f".*{PARTIAL_MARK}*"):
        remove_path(partial)
    return folder


def remove_region_folder(output: str | os.PathLike[str], key: str) -> None:
    """Remove the region files of fingerprint ``key`` (and the hidden root once empty)."""
    root = regions_root(output)
    remove_path(root / key)
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()


def publish_mosaics(mosaics: Sequence[tuple[Sequence[Path], str | os.PathLike[str], str]], grid: dict[str, Any],
                    creation_options: Sequence[str], cog: bool, reporter: Reporter | None = None) -> list[Path]:
    """Mosaic region files (through a VRT) into final GeoTIFFs, written as a single run writes them.

    The writer is the one of a single run (:class:`~otbtf_qgis.core.io.raster.GeoTiffWriter`:
    the same merged creation options, COG); band descriptions, nodata, dataset metadata,
    palette and class names are those of the region files, the geotransform and CRS those
    of the grid. The files are published together once all are written: on error or
    cancel none is.

    Args:
        mosaics: ``(region files, final path, parameter named in errors)`` per output.
        grid: ``width``, ``height``, ``geotransform`` and ``crs_wkt`` of the output grid.
        creation_options: The user's creation options (merged with the defaults here).
        cog: Write Cloud Optimized GeoTIFFs.
        reporter: Progress per strip, cancel.
    """
    reporter = reporter or NullReporter()
    writers: list[GeoTiffWriter] = []
    try:
        for number, (paths, final, parameter) in enumerate(mosaics):
            writers.append(_copy_mosaic(paths, Path(final), grid, merged_creation_options(creation_options), cog,
                                        parameter, reporter.sub(number / len(mosaics), (number + 1) / len(mosaics))))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return publish_together(writers)


def _copy_mosaic(paths: Sequence[Path], final: Path, grid: dict[str, Any], options: list[str], cog: bool,
                 parameter: str, reporter: Reporter) -> GeoTiffWriter:
    """The writer of ``final`` with every pixel of the region files written, not yet published."""
    vrt_path = paths[0].parent / f"{final.name}.vrt"
    write_mosaic_vrt(paths, vrt_path)
    writer: GeoTiffWriter | None = None
    try:
        mosaic, first = gdal.Open(str(vrt_path)), gdal.Open(str(paths[0]))
        if (mosaic.RasterXSize, mosaic.RasterYSize) != (grid["width"], grid["height"]):
            raise RasterIOError(f"the region files in '{paths[0].parent}' cover {mosaic.RasterXSize}x"
                                f"{mosaic.RasterYSize} pixels, not the {grid['width']}x{grid['height']} of the "
                                "grid. Delete that folder and run again.", parameter)
        bands = [first.GetRasterBand(k + 1) for k in range(first.RasterCount)]
        # The workers have stopped: compress with every core (the blocks' contents do not change).
        threaded = options if any(o.upper().startswith("NUM_THREADS=") for o in options) else [
            *options, "NUM_THREADS=ALL_CPUS"]
        writer = GeoTiffWriter(final, grid["width"], grid["height"], len(bands), gdal_array_type(bands[0].DataType),
                               grid["geotransform"], grid["crs_wkt"], bands[0].GetNoDataValue(), threaded,
                               [band.GetDescription() for band in bands], cog, parameter)
        writer.set_metadata(first.GetMetadata())
        scale = bands[0].GetScale()
        if scale not in (None, 1.0) or bands[0].GetOffset() not in (None, 0.0):  # scaled output types
            writer.set_scale(scale if scale is not None else 1.0, bands[0].GetOffset() or 0.0)
        table, names = bands[0].GetColorTable(), bands[0].GetRasterCategoryNames()
        if table is not None:  # GeoTIFF stores a whole palette: keep one colour per named class
            count = len(names) if names else table.GetCount()
            writer.set_color_table([table.GetColorEntry(k)[:3] for k in range(count)], names or None)
        rows = block_size(options)[1]
        rows *= max(1, MOSAIC_STRIP_BYTES // max(1, grid["width"] * len(bands) * writer.dtype.itemsize * rows))
        with gdal_cache_limit():
            for top in range(0, grid["height"], rows):
                reporter.check_canceled()
                strip = Window(0, top, grid["width"], min(rows, grid["height"] - top))
                if len(bands) == 1:
                    pixels = mosaic.GetRasterBand(1).ReadAsArray(0, top, strip.width, strip.height)
                else:
                    pixels = mosaic.ReadAsArray(0, top, strip.width, strip.height, interleave="pixel")
                writer.write(strip, pixels)
                reporter.progress((top + strip.height) / grid["height"])
        reporter.check_canceled()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        mosaic = first = None
        remove_path(vrt_path)
    return writer
