"""The ``accuracyassessment`` job: a class map against reference data, read by strips.

The map is read once, in strips of whole rows (never whole): each strip adds to the
count of the map's pixels per class (the strata weights of the area estimates, over the
whole map) and, where reference lies, to the pixel counts of each (sampling unit, map
class) pair. A vector reference's polygons are burnt on each strip (pixel-centre rule)
and its points looked up; a reference raster's strip is read beside the map's. The
classes known to the map are its named codes and the codes it holds; reference classes
it does not know are left out, counted and named. Then the statistics of
:mod:`otbtf_qgis.core.assessment.statistics` and the outputs of
:mod:`otbtf_qgis.core.assessment.report`, written atomically together: on an error or a
cancel, no output is left.

Left out and counted: features not in the split, without class or geometry, of a class
the map does not have, outside the map, polygons covering no pixel centre, and reference
pixels on the map's nodata.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from osgeo import gdal

from otbtf_qgis.core.assessment.classmap import ClassMap, count_codes, name_key, open_class_map, strip_rows, strips
from otbtf_qgis.core.assessment.reference import (
    NO_REFERENCE,
    RasterReference,
    VectorReference,
    listing,
    open_reference_raster,
    read_vector_reference,
)
from otbtf_qgis.core.assessment.report import (
    Assessment,
    class_metrics,
    class_table_csv,
    html_report,
    json_number,
    matrix_csv,
)
from otbtf_qgis.core.assessment.statistics import (
    accuracy_interval,
    accuracy_interval_from_sums,
    class_accuracies,
    kappa,
    olofsson_areas,
)
from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.io.raster import read_window, srs_from_wkt, window_geotransform
from otbtf_qgis.core.io.windows import Window
from otbtf_qgis.core.jobs.configs.accuracyassessment import AccuracyAssessmentConfig
from otbtf_qgis.core.jobs.outputs import atomic_output
from otbtf_qgis.core.progress import NullReporter, Reporter

gdal.UseExceptions()

Pairs = dict[tuple[int, int], int]


@dataclass
class Tally:
    """What the strips add up to.

    Attributes:
        map_counts: Map code → pixels over the whole map (nodata excluded).
        nodata_pixels: The map's nodata pixels.
        pairs: ``(unit, map code)`` (vector) or ``(reference code, map code)`` (raster) → pixels.
        covered: Pixels (nodata included) of each vector unit.
        on_nodata: Pixels of each vector unit on the map's nodata.
        nodata_by_code: Reference raster code → its pixels on the map's nodata.
    """

    map_counts: dict[int, int] = field(default_factory=dict)
    nodata_pixels: int = 0
    pairs: Pairs = field(default_factory=dict)
    covered: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    on_nodata: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    nodata_by_code: dict[int, int] = field(default_factory=dict)


def add_pairs(first: npt.NDArray[Any], second: npt.NDArray[Any], pairs: Pairs) -> None:
    """Count each distinct ``(first[k], second[k])`` into ``pairs``."""
    if first.size == 0:
        return
    first_values, first_index = np.unique(first, return_inverse=True)
    second_values, second_index = np.unique(second, return_inverse=True)
    keys = first_index.astype(np.int64).ravel() * len(second_values) + second_index.ravel()
    unique, counts = np.unique(keys, return_counts=True)
    for key, count in zip(unique.tolist(), counts.tolist(), strict=True):
        pair = (int(first_values[key // len(second_values)]), int(second_values[key % len(second_values)]))
        pairs[pair] = pairs.get(pair, 0) + int(count)


def burn_units(layer: Any, classmap: ClassMap, window: Window) -> npt.NDArray[np.int32] | None:
    """The unit of each pixel of ``window`` whose centre is inside a polygon (``-1`` elsewhere), or ``None`` if none."""
    geotransform = window_geotransform(classmap.info.geotransform, window)
    x0, dx, rx, y0, ry, dy = geotransform
    xs = [x0 + c * dx + r * rx for c, r in ((0, 0), (window.width, 0), (0, window.height),
                                             (window.width, window.height))]
    ys = [y0 + c * ry + r * dy for c, r in ((0, 0), (window.width, 0), (0, window.height),
                                             (window.width, window.height))]
    layer.SetSpatialFilterRect(min(xs), min(ys), max(xs), max(ys))
    try:
        if layer.GetFeatureCount() == 0:
            return None
        raster = gdal.GetDriverByName("MEM").Create("", window.width, window.height, 1, gdal.GDT_Int32)
        raster.SetGeoTransform(geotransform)
        srs = srs_from_wkt(classmap.info.crs_wkt)
        if srs is not None:
            raster.SetSpatialRef(srs)
        band = raster.GetRasterBand(1)
        band.Fill(-1)
        gdal.RasterizeLayer(raster, [1], layer, options=["ATTRIBUTE=unit"])
        units: npt.NDArray[np.int32] = band.ReadAsArray()
        return units
    finally:
        layer.SetSpatialFilter(None)


def tally_vector(reference: VectorReference, classmap: ClassMap, window: Window, values: npt.NDArray[Any],
                 valid: npt.NDArray[np.bool_], tally: Tally) -> None:
    """Add the polygons and points of ``reference`` in ``window`` (map ``values``, ``valid`` not nodata)."""
    if reference.polygons is not None:
        units = burn_units(reference.polygons.GetLayer(0), classmap, window)
        if units is not None:
            inside = units >= 0
            count = len(reference.codes)
            tally.covered += np.bincount(units[inside], minlength=count)
            tally.on_nodata += np.bincount(units[inside & ~valid], minlength=count)
            selected = inside & valid
            add_pairs(units[selected], values[selected], tally.pairs)
    if len(reference.point_units):
        first, last = np.searchsorted(reference.point_rows, [window.row_off, window.row_end])
        if last > first:
            rows = reference.point_rows[first:last] - window.row_off
            cols = reference.point_cols[first:last]
            point_units = reference.point_units[first:last]
            count = len(reference.codes)
            on_valid = valid[rows, cols]
            tally.covered += np.bincount(point_units, minlength=count)
            tally.on_nodata += np.bincount(point_units[~on_valid], minlength=count)
            add_pairs(point_units[on_valid], values[rows, cols][on_valid], tally.pairs)


def tally_raster(reference: RasterReference, window: Window, values: npt.NDArray[Any],
                 valid: npt.NDArray[np.bool_], tally: Tally) -> None:
    """Add the reference raster's pixels of ``window``."""
    labels = read_window(reference.dataset, window, bands=[1])[:, :, 0]
    has_reference = labels != NO_REFERENCE
    if reference.nodata is not None:
        has_reference &= labels != reference.nodata
    add_pairs(labels[has_reference & valid], values[has_reference & valid], tally.pairs)
    count_codes(labels, has_reference & ~valid, tally.nodata_by_code)


def _sort_points(reference: VectorReference) -> None:
    order = np.argsort(reference.point_rows, kind="stable")
    reference.point_rows = reference.point_rows[order]
    reference.point_cols = reference.point_cols[order]
    reference.point_units = reference.point_units[order]


def read_map(dataset: Any, classmap: ClassMap, reference: VectorReference | RasterReference, reporter: Reporter,
             rows: int | None = None) -> Tally:
    """Read the map strip by strip and tally it against ``reference`` (progress and cancel per strip)."""
    info = classmap.info
    tally = Tally()
    if isinstance(reference, VectorReference):
        tally.covered = np.zeros(len(reference.codes), np.int64)
        tally.on_nodata = np.zeros(len(reference.codes), np.int64)
        _sort_points(reference)
    itemsize = np.dtype(info.dtype).itemsize
    rows = rows or strip_rows(info, 2 * itemsize + 5)
    windows = list(strips(info, rows))
    for index, window in enumerate(windows):
        reporter.check_canceled()
        values = read_window(dataset, window, bands=[1])[:, :, 0]
        valid = (values != classmap.nodata) if classmap.nodata is not None else np.ones(values.shape, dtype=bool)
        count_codes(values, valid, tally.map_counts)
        tally.nodata_pixels += int(values.size - np.count_nonzero(valid))
        if isinstance(reference, VectorReference):
            tally_vector(reference, classmap, window, values, valid, tally)
        else:
            tally_raster(reference, window, values, valid, tally)
        reporter.progress((index + 1) / len(windows))
    return tally


@dataclass
class Matched:
    """The tally resolved against the map's classes."""

    codes: list[int]
    matrix: npt.NDArray[np.int64]
    left_out: dict[str, int]
    unknown: list[str]
    correct: npt.NDArray[np.int64] | None = None
    total: npt.NDArray[np.int64] | None = None


def _known_classes(classmap: ClassMap, tally: Tally) -> list[int]:
    return sorted(set(classmap.names) | set(tally.map_counts))


def _no_match(reference_codes: list[int], classmap: ClassMap, codes: list[int], parameter: str) -> InputError:
    known = listing(f"{c} ({classmap.names[c]})" if c in classmap.names else str(c) for c in codes) or "none"
    return InputError(f"none of the reference codes ({listing(reference_codes)}) is a class of the map (its codes: "
                      f"{known}). Check that the reference is for this map, or use class names.", parameter)


def match_vector(reference: VectorReference, classmap: ClassMap, tally: Tally) -> Matched:
    """The matrix and per-unit counts of a vector reference; unknown codes are left out."""
    codes = _known_classes(classmap, tally)
    index = {code: k for k, code in enumerate(codes)}
    known = np.array([int(c) in index for c in reference.codes], dtype=bool)
    if not known.any():
        raise _no_match(sorted({int(c) for c in reference.codes}), classmap, codes, "CLASS_FIELD")
    matrix = np.zeros((len(codes), len(codes)), np.int64)
    correct = np.zeros(len(reference.codes), np.int64)
    total = np.zeros(len(reference.codes), np.int64)
    for (unit, map_code), count in tally.pairs.items():
        if not known[unit]:
            continue
        unit_code = int(reference.codes[unit])
        matrix[index[map_code], index[unit_code]] += count
        total[unit] += count
        if map_code == unit_code:
            correct[unit] += count
    counts = reference.counts
    unknown_units = int((~known).sum())
    left_out = {
        "not_in_split": counts.get("not_in_split", 0),
        "no_class_value": counts.get("no_class_value", 0),
        "no_geometry": counts.get("no_geometry", 0),
        "unknown_class": counts.get("unknown_class", 0) + unknown_units,
        "outside_map": int((reference.outside & known).sum()),
        "no_pixel_centre": int((reference.is_polygon & ~reference.outside & known & (tally.covered == 0)).sum()),
        "map_nodata_pixels": int(tally.on_nodata[known].sum()),
    }
    unknown = list(reference.unknown_names) + sorted({reference.values[u] for u in np.flatnonzero(~known)},
                                                     key=lambda v: (len(v), v))
    return Matched(codes, matrix, left_out, unknown, correct[known], total[known])


def match_raster(reference: RasterReference, classmap: ClassMap, tally: Tally, reporter: Reporter) -> Matched:
    """The matrix of a reference raster; unknown codes are left out."""
    codes = _known_classes(classmap, tally)
    index = {code: k for k, code in enumerate(codes)}
    seen = sorted({ref for ref, _ in tally.pairs} | set(tally.nodata_by_code))
    if not seen:
        raise InputError(f"the reference raster holds no reference pixel: all are its nodata ({reference.nodata}) or "
                         f"{NO_REFERENCE}. Give a raster with class codes where the reference is known.",
                         "REFERENCE_RASTER")
    if not any(code in index for code in seen):
        raise _no_match(seen, classmap, codes, "REFERENCE_RASTER")
    matrix = np.zeros((len(codes), len(codes)), np.int64)
    unknown_pixels = sum(n for code, n in tally.nodata_by_code.items() if code not in index)
    for (ref_code, map_code), count in tally.pairs.items():
        if ref_code in index:
            matrix[index[map_code], index[ref_code]] += count
        else:
            unknown_pixels += count
    for code in sorted(set(reference.names) & set(classmap.names)):
        if name_key(reference.names[code]) != name_key(classmap.names[code]):
            reporter.warning(f"REFERENCE_RASTER names code {code} '{reference.names[code]}' but the map names it "
                             f"'{classmap.names[code]}': codes are compared, not names. Check that both number the "
                             "classes the same way.")
    left_out = {"unknown_class": unknown_pixels,
                "map_nodata_pixels": sum(n for code, n in tally.nodata_by_code.items() if code in index)}
    return Matched(codes, matrix, left_out, [str(c) for c in seen if c not in index])


def _reference_kind(reference: VectorReference | RasterReference) -> str:
    if isinstance(reference, RasterReference):
        return "raster"
    polygons = bool(reference.is_polygon.any())
    points = bool((~reference.is_polygon).any())
    return "polygons and points" if polygons and points else "polygons" if polygons else "points"


def assess(config: AccuracyAssessmentConfig, reporter: Reporter | None = None,
           rows: int | None = None) -> tuple[Assessment, dict[str, Any]]:
    """Assess the map against the reference; return the assessment and the worker result (no file written).

    Args:
        config: The settings.
        reporter: Progress, messages and cancel.
        rows: Rows per strip (default: from a memory budget; tests use small strips).

    Raises:
        InputError: bad input (see the checks of :mod:`~otbtf_qgis.core.assessment.reference`),
            or no reference pixel left to assess.
    """
    reporter = reporter or NullReporter()
    dataset, classmap = open_class_map(config.input, config.nodata, config.class_names)
    if classmap.names_source:
        reporter.info(f"class names from {classmap.names_source}: "
                      + listing((f"{c} {classmap.names[c]}" for c in sorted(classmap.names)), 20))
    reference: VectorReference | RasterReference
    if config.reference:
        reference = read_vector_reference(config, classmap)
        for warning in reference.warnings:
            reporter.warning(warning)
        if reference.unknown_names:
            reporter.warning(f"reference classes {listing(reference.unknown_names)} are not classes of the map: "
                             f"their {reference.counts['unknown_class']} features are left out.")
    else:
        reference = open_reference_raster(config.reference_raster, classmap)
    reporter.progress(0.02)
    tally = read_map(dataset, classmap, reference, reporter.sub(0.02, 0.95), rows)
    if isinstance(reference, VectorReference):
        matched = match_vector(reference, classmap, tally)
        assert matched.correct is not None and matched.total is not None
        interval = accuracy_interval(matched.correct, matched.total)
        late = [v for v in matched.unknown if v not in reference.unknown_names]
        if late:
            reporter.warning(f"reference codes {listing(late)} are not classes of the map: their features are left "
                             "out.")
    else:
        matched = match_raster(reference, classmap, tally, reporter)
        n, c = int(matched.matrix.sum()), int(np.trace(matched.matrix))
        interval = accuracy_interval_from_sums(n, n, c, c, c, n)
        if matched.unknown:
            reporter.warning(f"reference codes {listing(matched.unknown)} are not classes of the map: their "
                             f"{matched.left_out['unknown_class']} pixels are left out.")
    parameter = "REFERENCE" if config.reference else "REFERENCE_RASTER"
    if int(matched.matrix.sum()) == 0:
        reasons = ", ".join(f"{count} {key.replace('_', ' ')}" for key, count in matched.left_out.items() if count)
        raise InputError(f"no reference pixel is left to assess ({reasons}). Check that the reference lies on "
                         "classified pixels of the map.", parameter)
    if matched.left_out.get("no_pixel_centre"):
        reporter.warning(f"{matched.left_out['no_pixel_centre']} polygons cover no pixel centre of the map and are "
                         "left out (too small or too thin for the map's pixels).")
    names = [classmap.name(code) for code in matched.codes]
    map_pixels = [tally.map_counts.get(code, 0) for code in matched.codes]
    assessment = Assessment(
        codes=matched.codes, names=names, matrix=matched.matrix, interval=interval, kappa=kappa(matched.matrix),
        accuracies=class_accuracies(matched.matrix),
        areas=olofsson_areas(matched.matrix, map_pixels, classmap.pixel_area), map_pixels=map_pixels,
        nodata_pixels=tally.nodata_pixels, left_out=matched.left_out, unknown_classes=matched.unknown,
        reference=config.reference or config.reference_raster, reference_kind=_reference_kind(reference),
        area_unit=classmap.area_unit, metric=classmap.metric, map_path=config.input,
        names_source=classmap.names_source)
    return assessment, result_of(assessment)


def result_of(assessment: Assessment) -> dict[str, Any]:
    """The worker result: every figure of the assessment, JSON-ready (``None`` where undefined)."""
    a = assessment
    f1 = a.accuracies.f1
    defined = f1[~np.isnan(f1)]
    areas = a.areas
    per_class = {}
    for k, name in enumerate(a.names):
        per_class[name] = {
            "code": a.codes[k],
            "users_accuracy": json_number(a.accuracies.users[k]),
            "producers_accuracy": json_number(a.accuracies.producers[k]),
            "f1": json_number(f1[k]),
            "map_sample_pixels": int(a.accuracies.map_counts[k]),
            "reference_pixels": int(a.accuracies.reference_counts[k]),
            "map_pixels": a.map_pixels[k],
            "weight": float(areas.weights[k]),
            "mapped_area": float(areas.mapped_area[k]),
            "estimated_area": float(areas.area[k]),
            "estimated_area_se": float(areas.standard_error[k] * areas.total_area),
            "estimated_area_ci95": float(areas.area_ci[k]),
        }
    return {
        "classes": a.names,
        "codes": a.codes,
        "matrix": a.matrix.tolist(),
        "overall_accuracy": json_number(a.interval.overall_accuracy),
        "overall_accuracy_se": json_number(a.interval.standard_error),
        "overall_accuracy_low": json_number(a.interval.low),
        "overall_accuracy_high": json_number(a.interval.high),
        "sampling_units": a.interval.units,
        "assessed_pixels": a.interval.pixels,
        "kappa": json_number(a.kappa),
        "mean_f1": float(defined.mean()) if defined.size else None,
        "min_f1": float(defined.min()) if defined.size else None,
        "class_metrics": class_metrics(a),
        "per_class": per_class,
        "left_out": dict(a.left_out),
        "unknown_classes": list(a.unknown_classes),
        "reference_kind": a.reference_kind,
        "map_pixels": int(sum(a.map_pixels)),
        "nodata_pixels": a.nodata_pixels,
        "total_area": areas.total_area,
        "area_unit": a.area_unit,
        "total_area_ha": areas.total_area / 10_000 if a.metric else None,
        "strata_without_sample": [a.names[i] for i in areas.strata_without_sample],
        "strata_without_variance": [a.names[i] for i in areas.strata_without_variance],
    }


def accuracy_assessment(config: AccuracyAssessmentConfig, reporter: Reporter | None = None,
                        rows: int | None = None) -> dict[str, Any]:
    """Assess the map and write the outputs (all published together, none on an error or a cancel).

    Args:
        config: The settings.
        reporter: Progress, messages and cancel.
        rows: Rows per strip (default: from a memory budget).

    Returns:
        The worker result (see :func:`result_of`) with ``outputs``: ``matrix``, and
        ``report`` and ``class_table`` when asked.

    Raises:
        InputError: bad input.
        RasterIOError: an output folder cannot be written.
        CancelledError: the user cancelled.
    """
    reporter = reporter or NullReporter()
    assessment, result = assess(config, reporter, rows)
    reporter.check_canceled()
    texts = {"matrix": (config.output_matrix, "OUTPUT_MATRIX", matrix_csv(assessment)),
             "class_table": (config.output_class_table, "OUTPUT_CLASS_TABLE", class_table_csv(assessment)),
             "report": (config.output_report, "OUTPUT_REPORT", html_report(assessment))}
    written: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for key, (path, parameter, text) in texts.items():
            if not path:
                continue
            temp = stack.enter_context(atomic_output(path, parameter))
            Path(temp).write_text(text, encoding="utf-8")
            written[key] = path
        reporter.check_canceled()
    reporter.progress(1.0)
    interval = assessment.interval
    reporter.info(f"overall accuracy {interval.overall_accuracy:.4f} (95 % CI {interval.low:.4f} – "
                  f"{interval.high:.4f}) over {interval.pixels} pixels in {interval.units} units; kappa "
                  f"{assessment.kappa:.4f}")
    result["outputs"] = written
    return result


def run(config: AccuracyAssessmentConfig, reporter: Reporter) -> dict[str, Any]:
    """Worker entry point of ``accuracyassessment``."""
    return accuracy_assessment(config, reporter)
