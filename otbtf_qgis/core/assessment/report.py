r"""What an accuracy assessment found, and how it is written: CSV tables and an HTML report.

- The confusion matrix (CSV): class names as row (map) and column (reference) headers,
  the corner cell ``map \ reference`` saying which axis is which, a total row and column.
- The class table (CSV): one row per class with UA, PA, F1, the pixels on each axis, the
  mapped and estimated areas and the half-width of the 95 % interval (map units², and
  hectares when the CRS is metric). Undefined values are empty cells, never 0.
- The HTML report: what was left out, the matrix, OA with its interval, kappa, the
  per-class table, the area table and the notes on what the intervals mean.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from otbtf_qgis.core.assessment.statistics import AccuracyInterval, AreaEstimate, ClassAccuracies

#: The corner cell of the matrix: rows are the map's classes, columns the reference's.
CORNER = "map \\ reference"
#: Square metres in a hectare.
HECTARE = 10_000.0
#: What each left-out count is, in the report.
LEFT_OUT_LABELS = {
    "not_in_split": "features not in the split (SPLIT_FIELD ≠ SPLIT_VALUE)",
    "no_class_value": "features without a class value",
    "no_geometry": "features without a geometry",
    "unknown_class": "reference {units} whose class is not a class of the map",
    "outside_map": "features outside the map",
    "no_pixel_centre": "polygons covering no pixel centre of the map",
    "map_nodata_pixels": "reference pixels on the map's nodata",
}


@dataclass(frozen=True)
class Assessment:
    """Everything an assessment found (the classes in the order of the matrix).

    Attributes:
        codes: The class codes.
        names: The class names.
        matrix: ``n_ij``, rows the map classes, columns the reference classes.
        interval: OA and its interval over the sampling units.
        kappa: Cohen's kappa.
        accuracies: UA, PA, F1 per class.
        areas: The area estimates.
        map_pixels: The map's pixels of each class (whole map).
        nodata_pixels: The map's nodata pixels.
        left_out: Counts of what was left out (keys of :data:`LEFT_OUT_LABELS`).
        unknown_classes: The reference classes the map does not have.
        reference: The reference as given (path).
        reference_kind: ``"polygons"``, ``"points"``, ``"polygons and points"`` or ``"raster"``.
        area_unit: ``"m²"``, ``"square degrees"`` or ``"map units²"``.
        metric: Whether areas are also given in hectares.
        map_path: The class map.
        names_source: Where the class names come from (``CLASS_NAMES``, ``category names`` or ``""``).
    """

    codes: list[int]
    names: list[str]
    matrix: npt.NDArray[np.int64]
    interval: AccuracyInterval
    kappa: float
    accuracies: ClassAccuracies
    areas: AreaEstimate
    map_pixels: list[int]
    nodata_pixels: int
    left_out: dict[str, int]
    unknown_classes: list[str]
    reference: str
    reference_kind: str
    area_unit: str
    metric: bool
    map_path: str = ""
    names_source: str = ""

    @property
    def unit_word(self) -> str:
        """What a count of the reference counts: ``features`` or ``pixels``."""
        return "pixels" if self.reference_kind == "raster" else "features"


def number(value: float | int) -> str:
    """A number for a CSV cell: integers as such, floats at full precision, NaN as an empty cell."""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return ""
    return repr(value) if not value.is_integer() else str(value)


def _csv(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


def matrix_csv(assessment: Assessment) -> str:
    """The confusion matrix as CSV text (see the module docstring)."""
    matrix = assessment.matrix
    rows: list[list[Any]] = [[CORNER, *assessment.names, "total"]]
    for name, row in zip(assessment.names, matrix.tolist(), strict=True):
        rows.append([name, *row, sum(row)])
    rows.append(["total", *matrix.sum(axis=0).tolist(), int(matrix.sum())])
    return _csv(rows)


CLASS_TABLE_COLUMNS = ("class", "code", "users_accuracy", "producers_accuracy", "f1", "map_sample_pixels",
                       "reference_pixels", "map_pixels", "mapped_area", "estimated_area", "estimated_area_ci95",
                       "mapped_area_ha", "estimated_area_ha", "estimated_area_ci95_ha")


def class_table_csv(assessment: Assessment) -> str:
    """One row per class (see :data:`CLASS_TABLE_COLUMNS`); ``estimated_area_ci95`` is the ± half-width.

    ``map_sample_pixels`` is ``n_i·`` (reference pixels mapped as the class), ``map_pixels``
    the class's pixels over the whole map. Areas are in the map's units²; the ``_ha``
    columns are empty unless the CRS is metric.
    """
    acc, areas = assessment.accuracies, assessment.areas
    rows: list[list[Any]] = [list(CLASS_TABLE_COLUMNS)]
    for k, (code, name) in enumerate(zip(assessment.codes, assessment.names, strict=True)):
        hectares = ([number(areas.mapped_area[k] / HECTARE), number(areas.area[k] / HECTARE),
                     number(areas.area_ci[k] / HECTARE)] if assessment.metric else ["", "", ""])
        rows.append([name, code, number(acc.users[k]), number(acc.producers[k]), number(acc.f1[k]),
                     number(int(acc.map_counts[k])), number(int(acc.reference_counts[k])),
                     assessment.map_pixels[k], number(areas.mapped_area[k]), number(areas.area[k]),
                     number(areas.area_ci[k]), *hectares])
    return _csv(rows)


def json_number(value: float) -> float | None:
    """``value`` as a JSON number, ``None`` for NaN (an undefined figure)."""
    return None if math.isnan(value) else float(value)


def class_metrics(assessment: Assessment) -> dict[str, dict[str, float | None]]:
    """Class name → ``{"users_accuracy", "producers_accuracy", "f1"}`` (``None`` where undefined)."""
    acc = assessment.accuracies
    return {name: {"users_accuracy": json_number(float(acc.users[k])),
                   "producers_accuracy": json_number(float(acc.producers[k])),
                   "f1": json_number(float(acc.f1[k]))}
            for k, name in enumerate(assessment.names)}


def _percent(value: float) -> str:
    return "—" if math.isnan(value) else f"{100 * value:.1f} %"


def _area(value: float, assessment: Assessment) -> str:
    if math.isnan(value):
        return "—"
    if assessment.metric:
        return f"{value / HECTARE:,.2f} ha"
    return f"{value:,.6g} {assessment.area_unit}"


def notes(assessment: Assessment) -> list[str]:
    """The notes of the report: what the intervals mean for this reference, and the strata that lack samples."""
    names = assessment.names
    kind = assessment.reference_kind
    result = []
    if kind == "points":
        result.append("Each point is one sampling unit: the interval of the overall accuracy is the usual binomial "
                      "interval.")
    elif kind == "raster":
        result.append("Each pixel of the reference raster is one sampling unit (the raster does not say which "
                      "pixels belong together): if it was drawn from polygons, its pixels are not independent and "
                      "the interval of the overall accuracy is too narrow.")
    else:
        result.append("Pixels within a polygon are not independent: the interval of the overall accuracy counts each "
                      "feature (polygon or point) as one sampling unit, a cluster of pixels.")
    narrow = {"points": "for polygons", "raster": "for a reference raster drawn from polygons"}.get(
        kind, "for polygon references, as here")
    result.append("The area estimates follow Olofsson et al. (2014), with the map classes as strata; their intervals "
                  "are computed per pixel, as the formula asks. They are exact for a probability sample of points "
                  f"(stratified random by map class) and too narrow {narrow}, whose pixels are not independent; for "
                  "a reference not drawn at random, the estimates themselves may be biased.")
    missing = assessment.areas.strata_without_sample
    if missing:
        share = float(assessment.areas.weights[missing].sum())
        result.append(f"Map classes without any reference pixel: {', '.join(names[i] for i in missing)} "
                      f"({100 * share:.2f} % of the map). They are left out of the area estimates, which then "
                      "cover only the rest of the map.")
    single = assessment.areas.strata_without_variance
    if single:
        result.append(f"Map classes with a single reference pixel: {', '.join(names[i] for i in single)}. A stratum "
                      "needs at least two to give a variance: they are left out of the standard errors, which are "
                      "therefore too small.")
    return result


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], first_is_header: bool = True) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = [f"<th>{html.escape(row[0])}</th>" if first_is_header else f"<td>{html.escape(row[0])}</td>"]
        cells.extend(f"<td>{html.escape(cell)}</td>" for cell in row[1:])
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_STYLE = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}"
          "th,td{border:1px solid #bbb;padding:.25em .6em;text-align:right}th:first-child{text-align:left}"
          "thead th{background:#eee}caption{text-align:left}.note{color:#333}")


def html_report(assessment: Assessment) -> str:
    """The HTML report (a self-contained page)."""
    a = assessment
    matrix = a.matrix
    interval = a.interval
    left_rows = [[LEFT_OUT_LABELS[key].format(units=a.unit_word), str(count)] for key, count in a.left_out.items()]
    if a.unknown_classes:
        left_rows.append(["classes not in the map", ", ".join(a.unknown_classes)])
    matrix_rows = [[name, *map(str, row), str(sum(row))] for name, row in zip(a.names, matrix.tolist(), strict=True)]
    matrix_rows.append(["total", *map(str, matrix.sum(axis=0).tolist()), str(int(matrix.sum()))])
    acc, areas = a.accuracies, a.areas
    class_rows = [[name, str(code), _percent(float(acc.users[k])), _percent(float(acc.producers[k])),
                   "—" if math.isnan(acc.f1[k]) else f"{acc.f1[k]:.3f}", str(int(acc.map_counts[k])),
                   str(int(acc.reference_counts[k]))]
                  for k, (code, name) in enumerate(zip(a.codes, a.names, strict=True))]
    area_rows = [[name, f"{a.map_pixels[k]:,}", _area(float(areas.mapped_area[k]), a),
                  f"{100 * areas.weights[k]:.2f} %", _area(float(areas.area[k]), a),
                  "± " + _area(float(areas.area_ci[k]), a)]
                 for k, name in enumerate(a.names)]
    oa = f"{100 * interval.overall_accuracy:.2f} %"
    if not math.isnan(interval.standard_error):
        oa += (f" (95 % CI {100 * interval.low:.2f} – {100 * interval.high:.2f} %, "
               f"SE {100 * interval.standard_error:.2f} %)")
    kappa = "—" if math.isnan(a.kappa) else f"{a.kappa:.4f}"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Accuracy assessment</title>",
        f"<style>{_STYLE}</style></head><body><h1>Accuracy assessment</h1>",
        f"<p>Map: {html.escape(a.map_path)}<br>Reference ({html.escape(a.reference_kind)}): "
        f"{html.escape(a.reference)}</p>",
        f"<p>Overall accuracy: <b>{oa}</b> over {interval.pixels:,} pixels in {interval.units:,} sampling units"
        f"<br>Kappa: <b>{kappa}</b></p>",
        "<h2>Left out</h2>", _table(["", "count"], left_rows),
        "<h2>Confusion matrix</h2><p>Rows: the map's classes; columns: the reference's (pixels).</p>",
        _table([CORNER, *a.names, "total"], matrix_rows),
        "<h2>Per class</h2><p>User's accuracy (UA, precision): share of the reference pixels mapped as the class "
        "that are the class. Producer's accuracy (PA, recall): share of the class's reference pixels mapped as "
        "it. — : no sample.</p>",
        _table(["class", "code", "UA", "PA", "F1", "mapped as (pixels)", "reference (pixels)"], class_rows),
        f"<h2>Areas</h2><p>Mapped area: {_area(areas.total_area, a)} ({sum(a.map_pixels):,} pixels; "
        f"{a.nodata_pixels:,} nodata pixels not counted). Estimated areas with their 95 % intervals (Olofsson et "
        "al. 2014).</p>",
        _table(["class", "map pixels", "mapped area", "map share", "estimated area", "95 % CI"], area_rows),
        "<h2>Notes</h2>", *(f"<p class='note'>{html.escape(note)}</p>" for note in notes(a)),
        "</body></html>\n",
    ]
    return "".join(parts)
