"""Splits and class balance: pure functions, checked on exact counts."""

from __future__ import annotations

import numpy as np
import pytest

from otbtf_qgis.core.data.splits import (
    balance_classes,
    cap_per_class,
    field_split,
    polygon_split,
    proportions,
    random_split,
)
from otbtf_qgis.core.errors import InputError


def test_proportions_are_checked_and_normalised():
    np.testing.assert_allclose(proportions(0.6, 0.2, 0.2), [0.6, 0.2, 0.2])
    np.testing.assert_allclose(proportions(0.3, 0.1, 0.0), [0.75, 0.25, 0.0])
    with pytest.raises(InputError, match="must be between 0 and 1, got 1.5") as error:
        proportions(0.5, 1.5, 0)
    assert error.value.parameter == "VALID_PROPORTION"
    with pytest.raises(InputError, match="are all 0"):
        proportions(0, 0, 0)


def test_random_split_counts_and_seed():
    shares = proportions(0.5, 0.3, 0.2)
    first = random_split(10, shares, seed=4)
    assert np.bincount(first, minlength=3).tolist() == [5, 3, 2]
    np.testing.assert_array_equal(first, random_split(10, shares, seed=4))
    assert not np.array_equal(first, random_split(10, shares, seed=5))


def test_polygon_split_is_per_class_and_whole():
    # 15 polygons of class 0, 4 of class 1, 3 of class 2; shares 0.7/0.15/0.15:
    # class 0: valid = test = max(1, round(2.25)) = 2, train 11; class 1: round(0.6) = 1 each, train 2;
    # class 2: 1 each, train 1.
    classes = [0] * 15 + [1] * 4 + [2] * 3
    assignment = polygon_split(classes, ["crop", "tree", "water"], proportions(0.7, 0.15, 0.15), seed=2)
    codes = np.array(classes)
    assert [np.bincount(assignment[codes == c], minlength=3).tolist() for c in range(3)] == [
        [11, 2, 2], [2, 1, 1], [1, 1, 1]]
    np.testing.assert_array_equal(assignment, polygon_split(classes, ["a", "b", "c"], proportions(0.7, 0.15, 0.15), 2))
    # No test share: two sets only.
    two = polygon_split([0] * 4, ["a"], proportions(0.75, 0.25, 0), seed=0)
    assert np.bincount(two, minlength=3).tolist() == [3, 1, 0]


def test_polygon_split_names_the_class_left_without_a_set():
    shares = proportions(0.7, 0.15, 0.15)
    with pytest.raises(InputError, match="class 'water' has 1 polygon\\(s\\): a whole polygon goes to one set, so "
                                         "these proportions would leave 'water' no validation polygon") as error:
        polygon_split([0, 0, 0, 1], ["crop", "water"], shares, seed=0)
    assert error.value.parameter == "POLYGONS"
    with pytest.raises(InputError, match="would leave 'crop' no test polygon"):
        polygon_split([0, 0], ["crop"], shares, seed=0)


def test_field_split_reads_the_users_split():
    np.testing.assert_array_equal(field_split(["train", " Valid", "TEST ", "train"]), [0, 1, 2, 0])
    with pytest.raises(InputError, match="found '' \\(1\\), 'validation' \\(2\\)") as error:
        field_split(["train", "validation", None, "validation"])
    assert error.value.parameter == "SPLIT_FIELD"


def test_cap_per_class_caps_each_class_in_each_set():
    assignment = np.array([0] * 10 + [1] * 4)
    classes = np.array([0] * 7 + [1] * 3 + [0] * 4)
    keep = cap_per_class(assignment, classes, cap=3, seed=1)
    assert keep[:7].sum() == 3 and keep[7:10].all() and keep[10:].sum() == 3
    assert cap_per_class(assignment, classes, cap=0, seed=1).all()


def test_balance_classes_keeps_as_many_of_each():
    classes = np.array([0] * 9 + [1] * 4 + [2] * 6 + [-1] * 3)
    keep = balance_classes(classes, cap=0, seed=0)
    assert [int(keep[classes == c].sum()) for c in (0, 1, 2, -1)] == [4, 4, 4, 0]
    capped = balance_classes(classes, cap=2, seed=0)
    assert [int(capped[classes == c].sum()) for c in (0, 1, 2)] == [2, 2, 2]


def test_cap_per_class_spreads_the_positions_over_the_polygons():
    # One class: a big polygon (0) with 20 positions and two narrow ones (1, 2) with 2 each; cap 6.
    groups = np.array([0] * 20 + [1] * 2 + [2] * 2)
    keep = cap_per_class(np.zeros(24, np.int64), np.zeros(24, np.int64), cap=6, seed=3, groups=groups)
    assert keep.sum() == 6
    assert [int(keep[groups == g].sum()) for g in (0, 1, 2)] == [2, 2, 2]
