"""Patches selection: sample positions on a grid over a raster and split them train/valid/test.

Positions are the centres of patches laid on a grid: patch starts ``offset + k * step``
along each axis, kept while the patch fits in the raster (see :mod:`otbtf_qgis.core.data.grid`).
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

Strategies (see :mod:`otbtf_qgis.core.data.splits` for why validation must be independent):

- ``polygons``: whole polygons go to train, valid or test, by the proportions, stratified
  per class and seeded (or as the polygons' ``SPLIT_FIELD`` says), so no validation or
  test position shares a polygon with a training one. Each set then has its own label
  raster (``OUTPUT_LABELS`` for training, ``OUTPUT_VALID_LABELS``, ``OUTPUT_TEST_LABELS``),
  so that no training patch carries the labels of a validation or test polygon, even
  where it overlaps one;
- ``split``: positions at random, seeded, by proportions (with polygons, a polygon's
  positions then fall in every set: the validation figures measure memory);
- ``chessboard``: train/valid on alternating grid cells (cell (i, j) goes to train when
  i + j is even);
- ``balanced``: as ``chessboard``, then the same number of positions of each class: the
  class of a position is the class of its polygon, or, with a label raster (``LABELS``),
  the most frequent label of its patch;
- ``all``: every position to the train output.

``MAX_PER_CLASS`` caps the positions of each class in each set (drawn at random, seeded,
evenly over the class's polygons), so that big classes do not drown small ones, nor big
polygons narrow ones.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
from osgeo import gdal, ogr

from otbtf_qgis.core.data.formats import CLASS_NAMES_ITEM, IGNORE_LABEL_ITEM
from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.data.grid import grid_starts, patch_centre, pixel_to_geo
from otbtf_qgis.core.jobs.params import parse_size
from otbtf_qgis.core.data.labels import class_labels
from otbtf_qgis.core.data.splits import (
    SPLITS,
    balance_classes,
    cap_per_class,
    field_split,
    polygon_split,
    proportions,
    random_split,
)
from otbtf_qgis.core.progress import NullReporter, Reporter
from otbtf_qgis.core.io.raster import GeoTiffWriter, RasterInfo, nodata_mask, open_raster, read_window, srs_from_wkt
from otbtf_qgis.core.jobs.configs.patchesselection import PatchesSelectionConfig
from otbtf_qgis.core.io.vector import FieldColumn, FieldKind, PolygonTable, read_polygons, write_points, write_polygons
from otbtf_qgis.core.io.windows import Window

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
#: Label of unlabelled pixels in the label raster.
IGNORE_LABEL = 255
#: Rough memory budget of one strip of the reference raster read to check nodata.
STRIP_BYTES = 64 << 20



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
                       info: RasterInfo, parameter: str = "OUTPUT_LABELS") -> None:
    """The label raster: class label inside the polygons, 255 elsewhere, on the input's grid, no nodata.

    Polygons whose burn value is negative are left out (unlabelled).
    """
    kept = [index for index, value in enumerate(burn_values) if value >= 0]
    polygons = PolygonTable([polygons.geometries[i] for i in kept], [polygons.values[i] for i in kept], polygons.kind,
                            polygons.crs_wkt)
    burn_values = [burn_values[i] for i in kept]
    writer = GeoTiffWriter(path, info.width, info.height, 1, np.uint8, info.geotransform, info.crs_wkt,
                           nodata=None, parameter=parameter)
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


def patch_majority_labels(dataset: Any, info: RasterInfo, cols: IntArray, rows: IntArray,
                          patch_size: tuple[int, int], candidates: BoolArray, reporter: Reporter) -> IntArray:
    """The most frequent label of each candidate patch of a label raster; -1 without a labelled pixel.

    Labels are 0–254; 255 and the raster's nodata are unlabelled. Ties go to the smaller
    label. The raster is read in strips of grid rows, one summed-area table per label.
    """
    psx, psy = patch_size
    result = np.full(candidates.shape, -1, np.int64)
    nodata = info.nodata[0]
    step_y = int(rows[1] - rows[0]) if len(rows) > 1 else psy
    per_strip = max(1, (max(psy, STRIP_BYTES // max(info.width * 9, 1)) - psy) // step_y + 1)
    needed = np.flatnonzero(candidates.any(axis=1)).tolist()
    for start in range(0, len(needed), per_strip):
        reporter.check_canceled()
        group = needed[start:start + per_strip]
        first, last = group[0], group[-1] + 1
        window = Window(int(cols[0]), int(rows[first]), int(cols[-1]) + psx - int(cols[0]),
                        int(rows[last - 1]) + psy - int(rows[first]))
        labels = read_window(dataset, window, bands=[1])[:, :, 0]
        unlabelled = (labels >= IGNORE_LABEL) | (labels < 0)
        if nodata is not None:
            unlabelled |= nodata_mask(labels[:, :, None], [nodata])
        best = np.zeros((last - first, len(cols)), np.int64)
        row_index = (rows[first:last] - window.row_off)[:, None]
        col_index = (cols - window.col_off)[None, :]
        for label in np.unique(labels[~unlabelled]):
            table = np.zeros((window.height + 1, window.width + 1), dtype=np.int64)
            np.cumsum(np.cumsum((labels == label) & ~unlabelled, axis=0), axis=1, out=table[1:, 1:])
            counts = (table[row_index + psy, col_index + psx] - table[row_index, col_index + psx]
                      - table[row_index + psy, col_index] + table[row_index, col_index])
            better = counts > best
            best[better] = counts[better]
            result[first:last][better] = int(label)
        reporter.progress((start + len(group)) / len(needed))
    result[~candidates] = -1
    return result


def _check_settings(config: PatchesSelectionConfig) -> None:
    """The settings that do not depend on the data."""
    if not config.output_train:
        raise InputError("no output given for the training points. Choose a file.", "OUTPUT_TRAIN")
    if config.class_field and not config.polygons:
        raise InputError("a class field needs a polygon layer (POLYGONS).", "CLASS_FIELD")
    if config.output_labels and not config.polygons:
        raise InputError("the label raster is made from polygons: give POLYGONS (and CLASS_FIELD).",
                         "OUTPUT_LABELS")
    if config.strategy == "polygons" and not config.polygons:
        raise InputError("the polygons strategy shares whole polygons between the sets: give POLYGONS (and "
                         "CLASS_FIELD).", "STRATEGY")
    if config.split_field and config.strategy != "polygons":
        raise InputError(f"SPLIT_FIELD says which set each polygon goes to: set STRATEGY to polygons (it is "
                         f"{config.strategy}).", "SPLIT_FIELD")
    for name, value in (("OUTPUT_VALID_LABELS", config.output_valid_labels),
                        ("OUTPUT_TEST_LABELS", config.output_test_labels)):
        if value and config.strategy != "polygons":
            raise InputError("a label raster per set needs STRATEGY=polygons (with the other strategies a polygon's "
                             "positions go to several sets): use OUTPUT_LABELS.", name)
    if config.output_polygons and not config.polygons:
        raise InputError("give POLYGONS: this output is the polygons with their set.", "OUTPUT_POLYGONS")
    if config.strategy == "balanced" and not config.labels and not (config.polygons and config.class_field):
        raise InputError("the balanced strategy needs classes: a label raster (LABELS) or POLYGONS with a "
                         "CLASS_FIELD.", "STRATEGY")
    if config.labels and config.strategy != "balanced":
        raise InputError(f"LABELS is the label raster of the balanced strategy (STRATEGY is {config.strategy}).",
                         "LABELS")
    if config.max_per_class < 0:
        raise InputError(f"must be 0 (no cap) or a number of positions, got {config.max_per_class}.",
                         "MAX_PER_CLASS")


def patches_selection(config: PatchesSelectionConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Select patch positions and write the point layers (and label rasters, polygons); return counts and outputs.

    Raises:
        InputError: bad settings, or no position kept (with the count per reason).
        RasterIOError: a raster cannot be read or an output written.
    """
    reporter = reporter or NullReporter()
    _check_settings(config)
    patch_size = parse_size(config.patch_size, "PATCH_SIZE")
    step = parse_size(config.step, "STEP") if str(config.step).strip() else patch_size
    offset = parse_size(config.offset, "OFFSET", minimum=0) if str(config.offset).strip() else (0, 0)
    outputs = {"train": config.output_train, "valid": config.output_valid, "test": config.output_test}
    shares = proportions(config.train_proportion, config.valid_proportion, config.test_proportion)
    dataset = open_raster(config.input, "INPUT")
    info = RasterInfo.from_dataset(dataset, config.input)
    mask = None
    if config.mask:
        mask = open_raster(config.mask, "MASK")
        if (mask.RasterXSize, mask.RasterYSize) != (info.width, info.height):
            raise InputError(f"the mask is {mask.RasterXSize}x{mask.RasterYSize} pixels but INPUT is "
                             f"{info.width}x{info.height}: the mask must be on INPUT's grid.", "MASK")
    label_raster = None
    if config.labels:
        label_raster = open_raster(config.labels, "LABELS")
        if (label_raster.RasterXSize, label_raster.RasterYSize) != (info.width, info.height):
            raise InputError(f"the label raster is {label_raster.RasterXSize}x{label_raster.RasterYSize} pixels but "
                             f"INPUT is {info.width}x{info.height}: it must be on INPUT's grid.", "LABELS")
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
    polygons = None
    labels = None
    codes = np.zeros(0, np.int64)  # class code of each polygon
    polygon_of = None  # polygon index of each grid position (-1 outside)
    if config.polygons:
        extra = {config.split_field: "SPLIT_FIELD"} if config.split_field else None
        polygons = read_polygons(config.polygons, config.class_field or None, info.crs_wkt, extra_fields=extra)
        if config.class_field:
            assert polygons.kind is not None
            labels = class_labels(polygons.values, polygons.kind, "CLASS_FIELD")
            codes = np.asarray(labels.codes, np.int64)
        else:
            codes = np.zeros(len(polygons.geometries), np.int64)
        polygon_of = centres_inside(polygons, list(range(len(polygons.geometries))), info, cols, rows, patch_size,
                                    step)
        inside = polygon_of >= 0
        if config.strategy == "split":
            reporter.warning("STRATEGY=split shares the positions of each polygon between the sets: overlapping "
                             "patches of one polygon then train and validate, and validation figures measure "
                             "memory. STRATEGY=polygons keeps whole polygons apart.")
    reporter.progress(0.05)
    # Only the positions inside the polygons are checked for nodata: the others are already rejected.
    kept = valid_patches(dataset, info, cols, rows, patch_size, _nodata_values(info, config.nodata), mask,
                         reporter.sub(0.05, 0.6), inside)
    majority = None
    if label_raster is not None:
        majority = patch_majority_labels(label_raster, info, cols, rows, patch_size, kept, reporter.sub(0.6, 0.75))
    dataset = mask = label_raster = None
    reporter.progress(0.75)
    rejected = {"nodata": int((inside & ~kept).sum()), "outside_polygons": int((~inside).sum())}
    if majority is not None:
        rejected["unlabelled"] = int((kept & (majority < 0)).sum())
        kept &= majority >= 0
    _check_any_kept(kept, rejected, n_candidates)
    row_index, col_index = np.nonzero(kept)
    position_polygon = polygon_of[row_index, col_index] if polygon_of is not None else None
    classes = None
    if majority is not None:
        classes = majority[row_index, col_index]
    elif position_polygon is not None and config.class_field:
        classes = codes[position_polygon]
    polygon_split_of = None
    if config.strategy == "polygons":
        assert polygons is not None and position_polygon is not None
        if config.split_field:
            polygon_split_of = field_split(polygons.attributes[config.split_field])
        else:
            polygon_split_of = polygon_split(codes, labels.names if labels is not None else ["polygons"], shares,
                                             config.seed)
        assignment = polygon_split_of[position_polygon]
    elif config.strategy == "split":
        assignment = random_split(len(row_index), shares, config.seed)
    elif config.strategy in ("chessboard", "balanced"):
        assignment = ((row_index + col_index) % 2).astype(np.int64)
    else:
        assignment = np.zeros(len(row_index), np.int64)
    chosen = np.ones(len(row_index), dtype=bool)
    if config.strategy == "balanced":
        assert classes is not None
        for split in range(len(SPLITS)):
            in_split = assignment == split
            chosen[in_split] = balance_classes(classes[in_split], config.max_per_class, config.seed + split)
        rejected["balancing"] = int((~chosen).sum())
    elif config.max_per_class:
        if classes is None:
            raise InputError("the cap is per class: give POLYGONS with a CLASS_FIELD.", "MAX_PER_CLASS")
        chosen = cap_per_class(assignment, classes, config.max_per_class, config.seed, position_polygon)
        rejected["over_class_cap"] = int((~chosen).sum())
    row_index, col_index, assignment = row_index[chosen], col_index[chosen], assignment[chosen]
    if classes is not None:
        classes = classes[chosen]
    n_kept = len(row_index)
    counts = {name: int((assignment == index).sum()) for index, name in enumerate(SPLITS)}
    for name in SPLITS:
        if counts[name] and not outputs[name]:
            raise InputError(f"the {config.strategy} strategy puts {counts[name]} positions in the {name} set but "
                             f"no output is given for it. Set OUTPUT_{name.upper()}, or set its proportion to 0.",
                             f"OUTPUT_{name.upper()}")
    if labels is not None and (config.output_labels or config.output_valid_labels or config.output_test_labels) \
            and int(codes.max()) >= IGNORE_LABEL:
        raise InputError(f"class label {int(codes.max())} does not fit the label raster (0 to "
                         f"{IGNORE_LABEL - 1}; {IGNORE_LABEL} marks unlabelled pixels).", "CLASS_FIELD")
    names = labels.names if labels is not None else []
    _warn_missing_classes(classes, assignment, names, reporter)
    reporter.check_canceled()
    # Everything is checked: from here on, only writing (no cancel half way through the outputs).
    written = _write_points(config, outputs, info, cols, rows, row_index, col_index, assignment, classes, patch_size,
                            polygons, labels, counts, reporter)
    if polygons is not None:
        written.update(_write_polygon_outputs(config, polygons, codes, polygon_split_of, names, info))
    reporter.progress(1.0)
    reporter.info(f"kept {n_kept} of {n_candidates} positions: " + ", ".join(f"{counts[s]} {s}" for s in SPLITS)
                  + "; rejected " + ", ".join(f"{count} {reason.replace('_', ' ')}"
                                              for reason, count in rejected.items()))
    result: dict[str, Any] = {
        "n_candidates": n_candidates,
        "n_kept": n_kept,
        "counts": counts,
        "rejected": rejected,
        "class_mapping": labels.mapping if labels is not None else {},
        "outputs": written,
    }
    if polygon_split_of is not None:
        result["polygons_per_set"] = {name: int((polygon_split_of == index).sum()) for index, name in enumerate(SPLITS)}
    if classes is not None:
        result["positions_per_class"] = {
            name: {(names[int(code)] if int(code) < len(names) else str(int(code))): int(count)
                   for code, count in zip(*np.unique(classes[assignment == index], return_counts=True), strict=True)}
            for index, name in enumerate(SPLITS)}
    return result


def _check_any_kept(kept: BoolArray, rejected: dict[str, int], n_candidates: int) -> None:
    if kept.any():
        return
    reasons = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in rejected.items() if count)
    hint = (" The polygons may not overlap INPUT (check their CRS) or be smaller than the grid step."
            if rejected["outside_polygons"] else " Check NODATA, MASK and the patch size.")
    raise InputError(f"no position kept out of {n_candidates} ({reasons}).{hint}", "INPUT")


def _warn_missing_classes(classes: IntArray | None, assignment: IntArray, names: list[str],
                          reporter: Reporter) -> None:
    """Warn when a class has no position in a set that has positions (its polygons there are too small)."""
    if classes is None:
        return
    present = set(np.unique(classes).tolist())
    for index, name in enumerate(SPLITS):
        in_set = assignment == index
        if not in_set.any():
            continue
        missing = sorted(present - set(np.unique(classes[in_set]).tolist()))
        if missing:
            shown = ", ".join(names[c] if c < len(names) else str(c) for c in missing)
            reporter.warning(f"no {name} position of the class(es) {shown}: their polygons in that set hold no "
                             "position (too small for the grid step, or nodata).")


def _write_points(config: PatchesSelectionConfig, outputs: dict[str, str], info: RasterInfo, cols: IntArray,
                  rows: IntArray, row_index: IntArray, col_index: IntArray, assignment: IntArray,
                  classes: IntArray | None, patch_size: tuple[int, int], polygons: PolygonTable | None, labels: Any,
                  counts: dict[str, int], reporter: Reporter) -> dict[str, str]:
    """Write the point layer of each set that has positions; return the paths written."""
    ids = row_index * len(cols) + col_index
    x, y = pixel_to_geo(info.geotransform, patch_centre(cols[col_index].astype(np.float64), patch_size[0]),
                        patch_centre(rows[row_index].astype(np.float64), patch_size[1]))
    metadata = {CLASS_NAMES_ITEM: json.dumps(labels.names)} if labels is not None else None
    class_values: list[Any] | None = None
    if classes is not None and config.class_field and polygons is not None and labels is not None:
        class_values = ([labels.names[int(c)] for c in classes] if polygons.kind == "string"
                        else [int(c) for c in classes])
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
        elif classes is not None:
            columns.append(FieldColumn("class", "integer", classes[selected].tolist()))
        written[name] = str(write_points(outputs[name], x[selected], y[selected], info.crs_wkt, columns, metadata,
                                         f"OUTPUT_{name.upper()}"))
        reporter.progress(0.75 + 0.15 * (index + 1) / len(SPLITS))
    return written


def _write_polygon_outputs(config: PatchesSelectionConfig, polygons: PolygonTable, codes: IntArray,
                           polygon_split_of: IntArray | None, names: list[str], info: RasterInfo) -> dict[str, str]:
    """The label rasters (one per set with the polygons strategy) and the polygons with their set."""
    written: dict[str, str] = {}
    label_names = names or ["inside"]
    targets = (("labels", config.output_labels, 0, "OUTPUT_LABELS"),
               ("valid_labels", config.output_valid_labels, 1, "OUTPUT_VALID_LABELS"),
               ("test_labels", config.output_test_labels, 2, "OUTPUT_TEST_LABELS"))
    for key, path, split, parameter in targets:
        if not path:
            continue
        burn = [int(code) if polygon_split_of is None or polygon_split_of[i] == split else -1
                for i, code in enumerate(codes)]
        write_label_raster(path, polygons, burn, label_names, info, parameter)
        written[key] = path
    if config.output_polygons:
        columns = []
        if config.class_field and polygons.kind is not None:
            columns.append(FieldColumn(config.class_field, polygons.kind, list(polygons.values)))
        if polygon_split_of is not None:
            columns.append(FieldColumn("split", "string", [SPLITS[int(s)] for s in polygon_split_of]))
        written["polygons"] = str(write_polygons(config.output_polygons, polygons.geometries, info.crs_wkt, columns,
                                                 parameter="OUTPUT_POLYGONS"))
    return written


def run(config: PatchesSelectionConfig, reporter: Reporter) -> dict[str, Any]:
    """Worker entry point of ``patchesselection``."""
    return patches_selection(config, reporter)
