"""Patches selection: sample positions on a grid over a raster and split them train/valid/test.

Positions are the centres of patches laid on a grid: patch starts ``offset + k * step``
along each axis, kept while the patch fits in the raster (see :mod:`otbtf_qgis.core.grid`).
A position is kept only if its whole patch holds no nodata in the reference raster (a
pixel is nodata when any band equals that band's nodata value) and, with a mask, no
zero mask pixel. With polygons, positions outside them are rejected first (and counted
as ``outside_polygons``); nodata and the mask are checked, and rejections counted as
``nodata``, only among the positions inside. Points sit at pixel centres for odd patch sizes and at pixel corners
for even ones, so that extracting a patch of the same size around a point gives back
exactly the selected patch.

With a polygon layer, a position is kept only when its **patch centre** (the point
itself) lies inside a polygon; the patch may extend beyond it. With a class field, the
polygon's class is copied to the point (a position inside overlapping polygons takes
the class of the last one). The optional label raster is the polygons burnt on the
input's grid (class label inside, 255 elsewhere; pixels whose centre is inside), for
dense training on sparse annotations.

Strategies: ``split`` (random, seeded, by proportions), ``chessboard`` (train/valid on
alternating grid cells: cell (i, j) goes to train when i + j is even), ``all`` (every
position to the train output).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
from osgeo import gdal, ogr

from otbtf_qgis.core.datafiles import CLASS_NAMES_ITEM, IGNORE_LABEL_ITEM
from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.grid import grid_starts, parse_size, patch_centre, pixel_to_geo
from otbtf_qgis.core.labels import class_labels
from otbtf_qgis.core.progress import NullReporter, Reporter
from otbtf_qgis.core.raster import GeoTiffWriter, RasterInfo, nodata_mask, open_raster, read_window, srs_from_wkt
from otbtf_qgis.core.sampling_config import PatchesSelectionConfig
from otbtf_qgis.core.vector import FieldColumn, FieldKind, PolygonTable, read_polygons, write_points
from otbtf_qgis.core.windows import Window

#: Label of unlabelled pixels in the label raster.
IGNORE_LABEL = 255
#: Rough memory budget of one strip of the reference raster read to check nodata.
STRIP_BYTES = 64 << 20

SPLITS = ("train", "valid", "test")


def _nodata_values(info: RasterInfo, override: float | None) -> list[float | None]:
    if override is not None:
        return [override] * info.bands
    return list(info.nodata)


def valid_patches(dataset: Any, info: RasterInfo, cols: npt.NDArray[np.int64], rows: npt.NDArray[np.int64],
                  patch_size: tuple[int, int], nodata: list[float | None], mask: Any | None,
                  reporter: Reporter, inside: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.bool_]:
    """For each grid patch, whether it holds no nodata pixel (and no zero of ``mask``).

    Only the candidates (``inside``, ``(n_rows, n_cols)``; default all) are checked, the
    others come out False. The raster is read in strips of whole grid rows, each over the
    columns of its candidates; strips of grid rows without candidates are not read. A
    summed-area table of the invalid pixels of a strip gives every patch's count of
    invalid pixels in O(1).
    """
    psx, psy = patch_size
    candidates = np.ones((len(rows), len(cols)), dtype=bool) if inside is None else inside
    valid = candidates.copy()
    checks = [(band, value) for band, value in enumerate(nodata) if value is not None]
    if not checks and mask is None:
        return valid
    bytes_per_row = info.width * (len(checks) * np.dtype(info.dtype).itemsize + 1)
    strip_rows = max(psy, STRIP_BYTES // max(bytes_per_row, 1))
    step_y = int(rows[1] - rows[0]) if len(rows) > 1 else psy
    per_strip = max(1, (strip_rows - psy) // step_y + 1)
    needed = np.flatnonzero(candidates.any(axis=1)).tolist()
    done = 0
    while done < len(needed):
        reporter.check_canceled()
        first = needed[done]
        while done < len(needed) and needed[done] < first + per_strip:
            done += 1
        last = needed[done - 1] + 1
        in_strip = np.flatnonzero(candidates[first:last].any(axis=0))
        first_col, last_col = int(in_strip[0]), int(in_strip[-1]) + 1
        window = Window(int(cols[first_col]), int(rows[first]), int(cols[last_col - 1]) + psx - int(cols[first_col]),
                        int(rows[last - 1]) + psy - int(rows[first]))
        invalid = np.zeros((window.height, window.width), dtype=bool)
        if checks:
            pixels = read_window(dataset, window, bands=[b + 1 for b, _ in checks])
            invalid |= nodata_mask(pixels, [value for _, value in checks])
        if mask is not None:
            invalid |= read_window(mask, window, bands=[1])[:, :, 0] == 0
        table = np.zeros((window.height + 1, window.width + 1), dtype=np.int64)
        np.cumsum(np.cumsum(invalid, axis=0), axis=1, out=table[1:, 1:])
        row_index = (rows[first:last] - window.row_off)[:, None]
        col_index = (cols[first_col:last_col] - window.col_off)[None, :]
        counts = (table[row_index + psy, col_index + psx] - table[row_index, col_index + psx]
                  - table[row_index + psy, col_index] + table[row_index, col_index])
        valid[first:last, first_col:last_col] &= counts == 0
        reporter.progress(done / len(needed))
    return valid


def _burn_layer(polygons: PolygonTable, burn_values: list[int]) -> tuple[Any, Any]:
    """An in-memory OGR layer of the polygons with an integer ``burn`` field."""
    source = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = source.CreateLayer("polygons", srs_from_wkt(polygons.crs_wkt), ogr.wkbUnknown)
    layer.CreateField(ogr.FieldDefn("burn", ogr.OFTInteger64))
    definition = layer.GetLayerDefn()
    for geometry, value in zip(polygons.geometries, burn_values, strict=True):
        feature = ogr.Feature(definition)
        feature.SetField("burn", int(value))
        feature.SetGeometry(geometry)
        layer.CreateFeature(feature)
    return source, layer


def centres_inside(polygons: PolygonTable, burn_values: list[int], info: RasterInfo,
                   cols: npt.NDArray[np.int64], rows: npt.NDArray[np.int64], patch_size: tuple[int, int],
                   step: tuple[int, int]) -> npt.NDArray[np.int64]:
    """Burn the polygons on the lattice of patch centres; ``-1`` where a centre is outside every polygon.

    The lattice is a raster whose pixel ``(i, j)`` is centred on the centre of grid patch
    ``(i, j)``, so GDAL's pixel-centre rule tests exactly the patch centres.
    """
    origin_u = patch_centre(float(cols[0]), patch_size[0]) - step[0] / 2
    origin_v = patch_centre(float(rows[0]), patch_size[1]) - step[1] / 2
    _, dx, rx, _, ry, dy = info.geotransform
    ox, oy = pixel_to_geo(info.geotransform, origin_u, origin_v)
    lattice = gdal.GetDriverByName("MEM").Create("", len(cols), len(rows), 1, gdal.GDT_Int32)
    lattice.SetGeoTransform((ox, dx * step[0], rx * step[1], oy, ry * step[0], dy * step[1]))
    if info.crs_wkt:
        lattice.SetProjection(info.crs_wkt)
    band = lattice.GetRasterBand(1)
    band.Fill(-1)
    source, layer = _burn_layer(polygons, burn_values)
    gdal.RasterizeLayer(lattice, [1], layer, options=["ATTRIBUTE=burn"])
    result: npt.NDArray[np.int64] = band.ReadAsArray().astype(np.int64)
    del source  # closes the in-memory layer
    return result


def write_label_raster(path: str, polygons: PolygonTable, burn_values: list[int], names: list[str],
                       info: RasterInfo) -> None:
    """The label raster: class label inside the polygons, 255 elsewhere, on the input's grid, no nodata."""
    writer = GeoTiffWriter(path, info.width, info.height, 1, np.uint8, info.geotransform, info.crs_wkt,
                           nodata=None, parameter="OUTPUT_LABELS")
    try:
        assert writer.dataset is not None
        writer.dataset.GetRasterBand(1).Fill(IGNORE_LABEL)
        source, layer = _burn_layer(polygons, burn_values)
        gdal.RasterizeLayer(writer.dataset, [1], layer, options=["ATTRIBUTE=burn"])
        del source
        writer.set_metadata({IGNORE_LABEL_ITEM: str(IGNORE_LABEL), CLASS_NAMES_ITEM: json.dumps(names)})
        writer.finalize()
    except BaseException:
        writer.abort()
        raise


def _split(n: int, config: PatchesSelectionConfig) -> npt.NDArray[np.int64]:
    """Split index (0 train, 1 valid, 2 test) of each of ``n`` positions for the ``split`` strategy."""
    proportions = np.array([config.train_proportion, config.valid_proportion, config.test_proportion], np.float64)
    names = ("TRAIN_PROPORTION", "VALID_PROPORTION", "TEST_PROPORTION")
    for name, value in zip(names, proportions, strict=True):
        if not 0 <= value <= 1 or math.isnan(value):
            raise InputError(f"must be between 0 and 1, got {value}.", name)
    if proportions.sum() <= 0:
        raise InputError("the train, valid and test proportions are all 0. Give at least one positive share.",
                         "TRAIN_PROPORTION")
    proportions = proportions / proportions.sum()
    n_train = round(float(n * proportions[0]))
    n_valid = min(n - n_train, round(float(n * proportions[1])))
    assignment = np.full(n, 2, np.int64)
    order = np.random.default_rng(config.seed).permutation(n)
    assignment[order[:n_train]] = 0
    assignment[order[n_train:n_train + n_valid]] = 1
    return assignment


def patches_selection(config: PatchesSelectionConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Select patch positions and write the point layers (and label raster); return counts and outputs.

    Raises:
        InputError: bad settings, or no position kept (with the count per reason).
        RasterIOError: a raster cannot be read or an output written.
    """
    reporter = reporter or NullReporter()
    patch_size = parse_size(config.patch_size, "PATCH_SIZE")
    step = parse_size(config.step, "STEP") if str(config.step).strip() else patch_size
    offset = parse_size(config.offset, "OFFSET", minimum=0) if str(config.offset).strip() else (0, 0)
    outputs = {"train": config.output_train, "valid": config.output_valid, "test": config.output_test}
    if not config.output_train:
        raise InputError("no output given for the training points. Choose a file.", "OUTPUT_TRAIN")
    if config.class_field and not config.polygons:
        raise InputError("a class field needs a polygon layer (POLYGONS).", "CLASS_FIELD")
    if config.output_labels and not config.polygons:
        raise InputError("the label raster is made from polygons: give POLYGONS (and CLASS_FIELD).",
                         "OUTPUT_LABELS")
    dataset = open_raster(config.input, "INPUT")
    info = RasterInfo.from_dataset(dataset, config.input)
    mask = None
    if config.mask:
        mask = open_raster(config.mask, "MASK")
        if (mask.RasterXSize, mask.RasterYSize) != (info.width, info.height):
            raise InputError(f"the mask is {mask.RasterXSize}x{mask.RasterYSize} pixels but INPUT is "
                             f"{info.width}x{info.height}: the mask must be on INPUT's grid.", "MASK")
    cols = np.array(grid_starts(info.width, patch_size[0], step[0], offset[0]), np.int64)
    rows = np.array(grid_starts(info.height, patch_size[1], step[1], offset[1]), np.int64)
    if len(cols) == 0 or len(rows) == 0:
        raise InputError(f"no {patch_size[0]}x{patch_size[1]} patch fits in INPUT ({info.width}x{info.height} "
                         f"pixels) with offset {offset[0]}x{offset[1]}. Use a smaller patch size or offset.",
                         "PATCH_SIZE")
    n_candidates = len(cols) * len(rows)
    reporter.info(f"{n_candidates} grid positions ({len(cols)} x {len(rows)}), patch {patch_size[0]}x"
                  f"{patch_size[1]}, step {step[0]}x{step[1]}")
    inside = np.ones((len(rows), len(cols)), dtype=bool)
    classes = None
    polygons = None
    labels = None
    burn: list[int] = []
    if config.polygons:
        polygons = read_polygons(config.polygons, config.class_field or None, info.crs_wkt)
        if config.class_field:
            assert polygons.kind is not None
            labels = class_labels(polygons.values, polygons.kind, "CLASS_FIELD")
            burn = [int(c) for c in labels.codes]
        else:
            burn = [0] * len(polygons.geometries)
        lattice = centres_inside(polygons, burn, info, cols, rows, patch_size, step)
        inside = lattice >= 0
        classes = lattice if config.class_field else None
    reporter.progress(0.05)
    # Only the positions inside the polygons are checked for nodata: the others are already rejected.
    kept = valid_patches(dataset, info, cols, rows, patch_size, _nodata_values(info, config.nodata), mask,
                         reporter.sub(0.05, 0.75), inside)
    dataset = mask = None
    reporter.progress(0.75)
    rejected = {"nodata": int((inside & ~kept).sum()), "outside_polygons": int((~inside).sum())}
    n_kept = int(kept.sum())
    if n_kept == 0:
        reasons = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in rejected.items() if count)
        hint = (" The polygons may not overlap INPUT (check their CRS) or be smaller than the grid step."
                if rejected["outside_polygons"] else " Check NODATA, MASK and the patch size.")
        raise InputError(f"no position kept out of {n_candidates} ({reasons}).{hint}", "INPUT")
    row_index, col_index = np.nonzero(kept)
    ids = row_index * len(cols) + col_index
    centre_u = patch_centre(cols[col_index].astype(np.float64), patch_size[0])
    centre_v = patch_centre(rows[row_index].astype(np.float64), patch_size[1])
    x, y = pixel_to_geo(info.geotransform, centre_u, centre_v)
    if config.strategy == "split":
        assignment = _split(n_kept, config)
    elif config.strategy == "chessboard":
        assignment = ((row_index + col_index) % 2).astype(np.int64)
    else:
        assignment = np.zeros(n_kept, np.int64)
    counts = {name: int((assignment == index).sum()) for index, name in enumerate(SPLITS)}
    for name in SPLITS:
        if counts[name] and not outputs[name]:
            raise InputError(f"the {config.strategy} strategy puts {counts[name]} positions in the {name} set but "
                             f"no output is given for it. Set OUTPUT_{name.upper()}, or set its proportion to 0.",
                             f"OUTPUT_{name.upper()}")
    if labels is not None and config.output_labels and int(labels.codes.max()) >= IGNORE_LABEL:
        raise InputError(f"class label {int(labels.codes.max())} does not fit the label raster (0 to "
                         f"{IGNORE_LABEL - 1}; {IGNORE_LABEL} marks unlabelled pixels).", "CLASS_FIELD")
    reporter.check_canceled()
    # Everything is checked: from here on, only writing (no cancel half way through the outputs).
    metadata = {CLASS_NAMES_ITEM: json.dumps(labels.names)} if labels is not None else None
    class_values: list[Any] | None = None
    if classes is not None and labels is not None:
        codes = classes[row_index, col_index]
        if polygons is not None and polygons.kind == "string":
            class_values = [labels.names[int(c)] for c in codes]
        else:
            class_values = [int(c) for c in codes]
    written: dict[str, str] = {}
    for index, name in enumerate(SPLITS):
        if not counts[name]:
            continue
        selected = assignment == index
        columns = [FieldColumn("id", "integer", ids[selected].tolist())]
        if class_values is not None and polygons is not None:
            kind: FieldKind = "string" if polygons.kind == "string" else "integer"
            columns.append(FieldColumn(config.class_field, kind,
                                       [v for v, s in zip(class_values, selected, strict=True) if s]))
        written[name] = str(write_points(outputs[name], x[selected], y[selected], info.crs_wkt, columns, metadata,
                                         f"OUTPUT_{name.upper()}"))
        reporter.progress(0.75 + 0.2 * (index + 1) / len(SPLITS))
    if config.output_labels and polygons is not None:
        write_label_raster(config.output_labels, polygons, burn, labels.names if labels else ["inside"], info)
        written["labels"] = config.output_labels
    reporter.progress(1.0)
    reporter.info(f"kept {n_kept} of {n_candidates} positions: " + ", ".join(f"{counts[s]} {s}" for s in SPLITS)
                  + f"; rejected {rejected['nodata']} with nodata, {rejected['outside_polygons']} outside polygons")
    return {
        "n_candidates": n_candidates,
        "n_kept": n_kept,
        "counts": counts,
        "rejected": rejected,
        "class_mapping": labels.mapping if labels is not None else {},
        "outputs": written,
    }


def run(config: PatchesSelectionConfig, reporter: Reporter) -> dict[str, Any]:
    """Worker entry point of ``patchesselection``."""
    return patches_selection(config, reporter)
