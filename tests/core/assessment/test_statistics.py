"""The statistics of a confusion matrix against values computed by hand (rows: map, columns: reference)."""

from __future__ import annotations

import math
from dataclasses import astuple

import numpy as np
import pytest

from otbtf_qgis.core.assessment.statistics import (
    accuracy_interval,
    accuracy_interval_from_sums,
    as_matrix,
    class_accuracies,
    kappa,
    olofsson_areas,
    overall_accuracy,
)

# Four classes; class 2 is in the reference but never mapped on it, class 3 is on neither axis.
MATRIX = [[8, 2, 1, 0],   # n_0· = 11
          [1, 6, 2, 0],   # n_1· = 9
          [0, 0, 0, 0],   # n_2· = 0
          [0, 0, 0, 0]]   # n_3· = 0
#          n_·j = 9, 8, 3, 0;  n = 20;  Σ n_ii = 8 + 6 = 14


def test_overall_accuracy_and_kappa_by_hand():
    assert overall_accuracy(MATRIX) == pytest.approx(14 / 20)  # 0.7
    # p_e = (11·9 + 9·8 + 0·3 + 0·0) / 20² = (99 + 72) / 400 = 0.4275
    # κ = (0.7 − 0.4275) / (1 − 0.4275) = 0.2725 / 0.5725
    assert kappa(MATRIX) == pytest.approx(0.2725 / 0.5725)
    assert kappa(MATRIX) == pytest.approx(0.47598253275109, abs=1e-12)


def test_kappa_and_accuracy_are_undefined_without_chance_agreement_or_samples():
    assert math.isnan(kappa([[5, 0], [0, 0]]))  # p_e = 5·5 / 25 = 1
    assert math.isnan(overall_accuracy([[0, 0], [0, 0]]))
    assert math.isnan(kappa([[0, 0], [0, 0]]))


def test_users_producers_accuracies_and_f1_with_undefined_values():
    acc = class_accuracies(MATRIX)
    # UA_i = n_ii / n_i·: 8/11, 6/9, undefined (never mapped), undefined
    np.testing.assert_allclose(acc.users[:2], [8 / 11, 6 / 9])
    assert math.isnan(acc.users[2]) and math.isnan(acc.users[3])
    # PA_j = n_jj / n_·j: 8/9, 6/8, 0/3 = 0 (defined: class 2 has 3 reference pixels), undefined
    np.testing.assert_allclose(acc.producers[:3], [8 / 9, 0.75, 0.0])
    assert math.isnan(acc.producers[3])
    # F1 = 2 n_ii / (n_i· + n_·i): 16/20 = 0.8 (= 2·(8/11)·(8/9) / (8/11 + 8/9) = (128/99) / (160/99)),
    # 12/17, 0/3 = 0, and undefined for class 3 (no sample on either axis): NaN, never 0
    np.testing.assert_allclose(acc.f1[:3], [0.8, 12 / 17, 0.0])
    assert 2 * (8 / 11) * (8 / 9) / (8 / 11 + 8 / 9) == pytest.approx(acc.f1[0])
    assert math.isnan(acc.f1[3])
    np.testing.assert_array_equal(acc.map_counts, [11, 9, 0, 0])
    np.testing.assert_array_equal(acc.reference_counts, [9, 8, 3, 0])


def test_accuracy_interval_counts_each_polygon_as_one_unit():
    # Three polygons: (correct c_k, total t_k) = (9, 10), (3, 5), (2, 5); T = 20, C = 14, OA = 0.7.
    # c_k − OA·t_k = 9 − 7 = 2, 3 − 3.5 = −0.5, 2 − 3.5 = −1.5; squares 4 + 0.25 + 2.25 = 6.5
    # SE² = m/(m−1) · 6.5 / T² = 3/2 · 6.5 / 400 = 0.024375
    interval = accuracy_interval([9, 3, 2], [10, 5, 5])
    assert interval.overall_accuracy == pytest.approx(0.7)
    assert interval.standard_error == pytest.approx(math.sqrt(0.024375))  # 0.1561249…
    assert (interval.units, interval.pixels) == (3, 20)
    # OA ± 1.96 · SE = 0.7 ± 0.30600490…: the upper end is clipped to 1
    assert interval.low == pytest.approx(0.7 - 1.96 * math.sqrt(0.024375))
    assert interval.low == pytest.approx(0.39399510, abs=1e-8)
    assert interval.high == 1.0
    # A unit without assessed pixel (all on nodata) is no sampling unit.
    assert accuracy_interval([9, 3, 2, 0], [10, 5, 5, 0]) == interval
    # The pixel-level interval would be much narrower: sqrt(0.7·0.3/19) = 0.105 < 0.156.
    assert interval.standard_error > math.sqrt(0.21 / 19)


def test_accuracy_interval_of_points_is_binomial():
    # 10 points, 7 correct: SE² = 10/9 · (7·0.3² + 3·0.7²)/10² = 10/9 · 2.1/100 = 0.7·0.3/9
    interval = accuracy_interval([1] * 7 + [0] * 3, [1] * 10)
    assert interval.standard_error == pytest.approx(math.sqrt(0.21 / 9))
    assert (interval.low, interval.high) == pytest.approx((0.7 - 1.96 * math.sqrt(0.21 / 9),
                                                           0.7 + 1.96 * math.sqrt(0.21 / 9)))
    # The same from sums, as for a reference raster (Σc² = Σct = C = 7, Σt² = m = T = 10).
    assert astuple(accuracy_interval_from_sums(10, 10, 7, 7, 7, 10)) == pytest.approx(astuple(interval))
    # From sums with the three polygons above: Σc² = 81 + 9 + 4 = 94, Σct = 90 + 15 + 10 = 115, Σt² = 150
    # → 94 − 2·0.7·115 + 0.49·150 = 94 − 161 + 73.5 = 6.5, as by the residuals.
    assert accuracy_interval_from_sums(3, 20, 14, 94, 115, 150).standard_error == pytest.approx(
        math.sqrt(0.024375))


def test_accuracy_interval_needs_two_units():
    interval = accuracy_interval([3], [4])
    assert interval.overall_accuracy == 0.75 and interval.units == 1
    assert math.isnan(interval.standard_error) and math.isnan(interval.low) and math.isnan(interval.high)
    with pytest.raises(ValueError):
        accuracy_interval([5], [4])


def test_olofsson_areas_by_hand():
    matrix = [[8, 2, 0],   # n_1· = 10
              [1, 3, 1],   # n_2· = 5
              [0, 1, 4]]   # n_3· = 5
    # 1000 map pixels of 100 m²: W = 600/1000, 300/1000, 100/1000 = 0.6, 0.3, 0.1; A = 100 000 m²
    areas = olofsson_areas(matrix, [600, 300, 100], 100.0)
    np.testing.assert_allclose(areas.weights, [0.6, 0.3, 0.1])
    assert areas.total_area == 100_000.0
    # p_ij = W_i n_ij / n_i·:
    #   0.6·8/10 = 0.48   0.6·2/10 = 0.12   0
    #   0.3·1/5  = 0.06   0.3·3/5  = 0.18   0.3·1/5 = 0.06
    #   0                 0.1·1/5  = 0.02   0.1·4/5 = 0.08
    np.testing.assert_allclose(areas.proportions, [[0.48, 0.12, 0.0], [0.06, 0.18, 0.06], [0.0, 0.02, 0.08]])
    # p̂_·j = 0.54, 0.32, 0.14 → Â_j = 54 000, 32 000, 14 000 m²
    np.testing.assert_allclose(areas.proportion, [0.54, 0.32, 0.14])
    np.testing.assert_allclose(areas.area, [54_000.0, 32_000.0, 14_000.0])
    np.testing.assert_allclose(areas.mapped_area, [60_000.0, 30_000.0, 10_000.0])
    # SE² = Σ_i W_i² (n_ij/n_i·)(1 − n_ij/n_i·) / (n_i· − 1):
    #   class 1: 0.36·0.8·0.2/9 + 0.09·0.2·0.8/4 + 0.01·0·1/4 = 0.0064 + 0.0036 + 0      = 0.0100
    #   class 2: 0.36·0.2·0.8/9 + 0.09·0.6·0.4/4 + 0.01·0.2·0.8/4 = 0.0064 + 0.0054 + 0.0004 = 0.0122
    #   class 3: 0              + 0.09·0.2·0.8/4 + 0.01·0.8·0.2/4 = 0.0036 + 0.0004   = 0.0040
    np.testing.assert_allclose(areas.standard_error, np.sqrt([0.01, 0.0122, 0.004]))
    # CI = ±1.96 · SE · A: 19 600, 21 648.8…, 12 396.1… m²
    np.testing.assert_allclose(areas.area_ci, 1.96 * np.sqrt([0.01, 0.0122, 0.004]) * 100_000)
    assert areas.area_ci[0] == pytest.approx(19_600.0)
    assert areas.strata_without_sample == [] and areas.strata_without_variance == []


def test_olofsson_strata_without_enough_samples_are_listed_not_fatal():
    # Stratum 3 has a single reference pixel: no variance term (n_i· − 1 = 0), the estimate still counts it.
    single = olofsson_areas([[4, 1, 0], [0, 3, 0], [0, 0, 1]], [50, 30, 20], 1.0)
    assert single.strata_without_variance == [2] and single.strata_without_sample == []
    # p̂ = 0.5·4/5, 0.5·1/5 + 0.3·3/3, 0.2·1/1 = 0.4, 0.4, 0.2
    np.testing.assert_allclose(single.proportion, [0.4, 0.4, 0.2])
    # class 1: 0.25·0.8·0.2/4 = 0.01 (strata 2 and 3: ratio 0, and stratum 3 has no term anyway)
    assert single.standard_error[0] == pytest.approx(0.1)
    # Stratum 3 has no reference pixel: it is left out of the estimates, which then cover 80 % of the map.
    missing = olofsson_areas([[4, 1, 0], [0, 3, 0], [0, 0, 0]], [50, 30, 20], 1.0)
    assert missing.strata_without_sample == [2]
    np.testing.assert_allclose(missing.proportion, [0.4, 0.4, 0.0])
    assert not np.isnan(missing.standard_error).any()


def test_matrix_checks():
    with pytest.raises(ValueError, match="square"):
        as_matrix([[1, 2, 3]])
    with pytest.raises(ValueError, match="2 map class counts for a 3-class matrix"):
        olofsson_areas(np.eye(3), [1, 2], 1.0)
