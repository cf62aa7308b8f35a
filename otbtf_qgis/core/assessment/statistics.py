"""Accuracy statistics of a confusion matrix, on numpy only.

Conventions: rows are the **map** classes ``i``, columns the **reference** classes ``j``,
in the same order; ``n_ij`` is the number of reference pixels of class ``j`` mapped as
class ``i``, ``n_i·`` a row total, ``n_·j`` a column total and ``n`` the grand total.

- Overall accuracy ``OA = Σ_i n_ii / n``.
- Its confidence interval treats each reference feature (polygon or point; each pixel
  of a reference raster) as one sampling unit, since the pixels of a polygon are not
  independent: OA is a ratio estimator over clusters. With ``c_k`` correct and ``t_k``
  assessed pixels in unit ``k``, ``m`` units and ``T = Σ_k t_k``::

      SE² = m / (m − 1) · Σ_k (c_k − OA · t_k)² / T²
      CI  = OA ± 1.96 · SE, clipped to [0, 1]

  With one pixel per unit (points, a reference raster) this is ``OA (1 − OA) / (n − 1)``,
  the usual binomial interval.
- Cohen's kappa ``κ = (p_o − p_e) / (1 − p_e)`` with ``p_o = OA`` and
  ``p_e = Σ_i n_i· n_·i / n²``.
- User's accuracy ``UA_i = n_ii / n_i·`` (precision, along the map axis), producer's
  accuracy ``PA_j = n_jj / n_·j`` (recall, along the reference axis), and
  ``F1 = 2 n_ii / (n_i· + n_·i)``, which equals ``2 · UA · PA / (UA + PA)`` when both are
  defined and is 0 for a class that is in the sample only on one axis. A value without
  a sample (a zero denominator) is NaN, never 0.
- Areas by the stratified estimator of Olofsson et al. (2014, *Good practices for
  estimating area and assessing accuracy of land change*, Remote Sensing of Environment
  148), the map classes being the strata: ``W_i`` is the share of the map's pixels in
  class ``i`` (over the whole map), ``A`` the mapped area, and::

      p_ij        = W_i · n_ij / n_i·
      p̂_·j        = Σ_i p_ij                     (area share of class j)
      Â_j         = A · p̂_·j
      SE(p̂_·j)    = sqrt(Σ_i W_i² · (n_ij / n_i·) · (1 − n_ij / n_i·) / (n_i· − 1))
      CI(Â_j)     = Â_j ± 1.96 · SE(p̂_·j) · A

  A stratum without reference sample (``n_i· = 0``) contributes nothing to the
  estimates (its mapped area is not redistributed) and one with ``n_i· = 1`` nothing to
  the variance; :class:`AreaEstimate` lists both so that reports can say so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: The normal quantile of a two-sided 95 % interval, as in Olofsson et al. (2014).
Z95 = 1.96


def as_matrix(matrix: npt.ArrayLike) -> FloatArray:
    """A confusion matrix as a square float64 array.

    Raises:
        ValueError: when it is not square, or holds a negative count.
    """
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"a confusion matrix is square, got shape {array.shape}")
    if (array < 0).any():
        raise ValueError("a confusion matrix holds counts, not negative values")
    return array


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """``numerator / denominator``, NaN where the denominator is 0."""
    result = np.full(np.shape(numerator), np.nan, dtype=np.float64)
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return result


def overall_accuracy(matrix: npt.ArrayLike) -> float:
    """``OA = Σ_i n_ii / n`` (NaN for an empty matrix)."""
    array = as_matrix(matrix)
    total = float(array.sum())
    return float(np.trace(array)) / total if total else math.nan


@dataclass(frozen=True)
class AccuracyInterval:
    """The overall accuracy and its 95 % confidence interval over sampling units.

    Attributes:
        overall_accuracy: ``OA = C / T``.
        standard_error: ``SE`` of the module docstring (NaN with fewer than two units).
        low: ``max(0, OA − z · SE)``.
        high: ``min(1, OA + z · SE)``.
        units: ``m``, the sampling units with at least one assessed pixel.
        pixels: ``T``, the assessed pixels.
    """

    overall_accuracy: float
    standard_error: float
    low: float
    high: float
    units: int
    pixels: int


def accuracy_interval_from_sums(units: int, pixels: int, correct: int, sum_cc: float, sum_ct: float, sum_tt: float,
                                z: float = Z95) -> AccuracyInterval:
    """The interval of :func:`accuracy_interval` from sums over the units.

    ``Σ_k (c_k − OA t_k)² = Σ c_k² − 2 OA Σ c_k t_k + OA² Σ t_k²``, so the interval needs
    only ``m``, ``T``, ``C = Σ c_k`` and those three sums (a reference raster, one unit per
    pixel, has ``Σ c_k² = Σ c_k t_k = C`` and ``Σ t_k² = m = T``).

    Args:
        units: ``m``, units with ``t_k > 0``.
        pixels: ``T = Σ t_k``.
        correct: ``C = Σ c_k``.
        sum_cc: ``Σ c_k²``.
        sum_ct: ``Σ c_k t_k``.
        sum_tt: ``Σ t_k²``.
        z: The normal quantile (1.96 for 95 %).
    """
    if pixels <= 0:
        return AccuracyInterval(math.nan, math.nan, math.nan, math.nan, units, pixels)
    accuracy = correct / pixels
    if units < 2:
        return AccuracyInterval(accuracy, math.nan, math.nan, math.nan, units, pixels)
    squares = max(sum_cc - 2 * accuracy * sum_ct + accuracy * accuracy * sum_tt, 0.0)
    error = math.sqrt(units / (units - 1) * squares) / pixels
    return AccuracyInterval(accuracy, error, max(0.0, accuracy - z * error), min(1.0, accuracy + z * error),
                            units, pixels)


def accuracy_interval(correct: npt.ArrayLike, total: npt.ArrayLike, z: float = Z95) -> AccuracyInterval:
    """OA and its confidence interval with each unit (polygon, point) a cluster of pixels.

    ``SE² = m / (m − 1) · Σ_k (c_k − OA · t_k)² / T²`` and ``CI = OA ± z · SE`` clipped to
    [0, 1]. Units without assessed pixel (``t_k = 0``) are not counted in ``m``. For points
    (``t_k = 1``) this is the binomial interval ``SE² = OA (1 − OA) / (m − 1)``.

    Args:
        correct: ``c_k``, correctly mapped pixels of each unit.
        total: ``t_k``, assessed pixels of each unit.
        z: The normal quantile (1.96 for 95 %).

    Raises:
        ValueError: when the arrays differ in length or a unit has more correct than assessed pixels.
    """
    c = np.asarray(correct, dtype=np.float64).ravel()
    t = np.asarray(total, dtype=np.float64).ravel()
    if c.shape != t.shape:
        raise ValueError(f"{c.size} correct counts for {t.size} totals")
    if (c > t).any() or (c < 0).any():
        raise ValueError("each unit has 0 <= correct <= total pixels")
    keep = t > 0
    c, t = c[keep], t[keep]
    pixels = float(t.sum())
    if pixels <= 0:
        return AccuracyInterval(math.nan, math.nan, math.nan, math.nan, 0, 0)
    accuracy = float(c.sum()) / pixels
    units = int(t.size)
    if units < 2:
        return AccuracyInterval(accuracy, math.nan, math.nan, math.nan, units, int(pixels))
    error = math.sqrt(units / (units - 1) * float(((c - accuracy * t) ** 2).sum())) / pixels
    return AccuracyInterval(accuracy, error, max(0.0, accuracy - z * error), min(1.0, accuracy + z * error),
                            units, int(pixels))


def kappa(matrix: npt.ArrayLike) -> float:
    """Cohen's kappa ``(p_o − p_e) / (1 − p_e)``, ``p_e = Σ_i n_i· n_·i / n²`` (NaN when ``p_e = 1`` or ``n = 0``)."""
    array = as_matrix(matrix)
    total = float(array.sum())
    if not total:
        return math.nan
    observed = float(np.trace(array)) / total
    expected = float((array.sum(axis=1) * array.sum(axis=0)).sum()) / (total * total)
    if expected >= 1.0:
        return math.nan
    return (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class ClassAccuracies:
    """Per-class accuracies, in the order of the matrix's classes (NaN where undefined).

    Attributes:
        users: ``UA_i = n_ii / n_i·`` (precision; NaN when the class is never mapped on the reference).
        producers: ``PA_j = n_jj / n_·j`` (recall; NaN when the class is not in the reference).
        f1: ``2 n_ii / (n_i· + n_·i)`` (NaN when the class is on neither axis).
        map_counts: ``n_i·``.
        reference_counts: ``n_·j``.
    """

    users: FloatArray
    producers: FloatArray
    f1: FloatArray
    map_counts: FloatArray
    reference_counts: FloatArray


def class_accuracies(matrix: npt.ArrayLike) -> ClassAccuracies:
    """User's and producer's accuracies and F1 of every class (see :class:`ClassAccuracies`)."""
    array = as_matrix(matrix)
    diagonal = np.diag(array).copy()
    rows = array.sum(axis=1)
    columns = array.sum(axis=0)
    return ClassAccuracies(_ratio(diagonal, rows), _ratio(diagonal, columns), _ratio(2 * diagonal, rows + columns),
                           rows, columns)


@dataclass(frozen=True)
class AreaEstimate:
    """Area estimates of Olofsson et al. (2014), map classes as strata (see the module docstring).

    Attributes:
        weights: ``W_i``, share of the mapped pixels in class ``i``.
        proportions: ``p_ij = W_i n_ij / n_i·`` (a row of zeros for a stratum without sample).
        proportion: ``p̂_·j``, estimated area share of class ``j``.
        standard_error: ``SE(p̂_·j)``.
        area: ``Â_j = A · p̂_·j``.
        area_ci: The half-width of the 95 % interval, ``z · SE(p̂_·j) · A``.
        mapped_area: The mapped area of each class, ``W_i · A``.
        total_area: ``A``, the area of the mapped (non-nodata) pixels.
        strata_without_sample: Classes mapped (``W_i > 0``) without any reference pixel
            (``n_i· = 0``): they are left out of the estimates.
        strata_without_variance: Classes mapped with a single reference pixel (``n_i· = 1``):
            they are left out of the standard errors.
    """

    weights: FloatArray
    proportions: FloatArray
    proportion: FloatArray
    standard_error: FloatArray
    area: FloatArray
    area_ci: FloatArray
    mapped_area: FloatArray
    total_area: float
    strata_without_sample: list[int]
    strata_without_variance: list[int]


def olofsson_areas(matrix: npt.ArrayLike, map_pixels: Sequence[float] | npt.ArrayLike, pixel_area: float,
                   z: float = Z95) -> AreaEstimate:
    """Stratified area estimates and their 95 % intervals (Olofsson et al. 2014).

    Args:
        matrix: ``n_ij``, rows the map classes (strata), columns the reference classes.
        map_pixels: The pixels of each map class over the **whole** map (nodata excluded),
            in the order of the matrix's classes.
        pixel_area: The area of one pixel (map units²).
        z: The normal quantile (1.96 for 95 %).

    Raises:
        ValueError: when ``map_pixels`` does not match the matrix or the map has no pixel.
    """
    array = as_matrix(matrix)
    counts = np.asarray(map_pixels, dtype=np.float64).ravel()
    if counts.shape != (array.shape[0],):
        raise ValueError(f"{counts.size} map class counts for a {array.shape[0]}-class matrix")
    total_pixels = float(counts.sum())
    if total_pixels <= 0:
        raise ValueError("the map has no classified pixel")
    weights = counts / total_pixels
    total_area = total_pixels * float(pixel_area)
    rows = array.sum(axis=1)
    sampled = rows > 0
    ratio = np.zeros_like(array)
    ratio[sampled] = array[sampled] / rows[sampled, None]
    proportions = weights[:, None] * ratio
    proportion = proportions.sum(axis=0)
    with_variance = rows >= 2
    terms = np.zeros_like(array)
    terms[with_variance] = (weights[with_variance, None] ** 2 * ratio[with_variance] * (1 - ratio[with_variance])
                            / (rows[with_variance, None] - 1))
    error = np.sqrt(terms.sum(axis=0))
    return AreaEstimate(
        weights=weights,
        proportions=proportions,
        proportion=proportion,
        standard_error=error,
        area=proportion * total_area,
        area_ci=z * error * total_area,
        mapped_area=weights * total_area,
        total_area=total_area,
        strata_without_sample=[int(i) for i in np.flatnonzero((weights > 0) & (rows == 0))],
        strata_without_variance=[int(i) for i in np.flatnonzero((weights > 0) & (rows == 1))],
    )
