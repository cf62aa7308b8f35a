"""Which positions go to train, valid and test, and how many of each class: pure functions.

A validation figure measures the map only when validation is independent of training.
Patches of neighbouring positions overlap, so a random split of the positions of one
polygon puts nearly the same pixels in both sets and measures memory. Hence the splits:

- :func:`random_split` — positions at random (seeded), by proportions (``split``);
- :func:`polygon_split` — whole polygons, stratified per class (seeded), by proportions
  (``polygons``): no validation or test position shares a polygon with a training one;
- :func:`field_split` — whole polygons by a ``train``/``valid``/``test`` attribute the user
  set (``SPLIT_FIELD``);

and the class balance:

- :func:`cap_per_class` — at most ``cap`` positions of each class in each set, drawn at
  random, so that big classes do not drown small ones;
- :func:`balance_classes` — the same number of positions of each class (``balanced``).

Split indices are 0 (train), 1 (valid) and 2 (test).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from otbtf_qgis.core.errors import InputError

SPLITS = ("train", "valid", "test")
PROPORTION_PARAMETERS = ("TRAIN_PROPORTION", "VALID_PROPORTION", "TEST_PROPORTION")
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def proportions(train: float, valid: float, test: float) -> npt.NDArray[np.float64]:
    """The three shares, checked and normalised to sum to 1.

    Raises:
        InputError: a share outside [0, 1], or all three 0 (naming the parameter).
    """
    values = np.array([train, valid, test], np.float64)
    for name, value in zip(PROPORTION_PARAMETERS, values, strict=True):
        if not 0 <= value <= 1 or math.isnan(value):
            raise InputError(f"must be between 0 and 1, got {value}.", name)
    if values.sum() <= 0:
        raise InputError("the train, valid and test proportions are all 0. Give at least one positive share.",
                         "TRAIN_PROPORTION")
    result: npt.NDArray[np.float64] = values / values.sum()
    return result


def random_split(n: int, shares: npt.NDArray[np.float64], seed: int) -> IntArray:
    """Split index of each of ``n`` positions: ``round(n · share)`` train and valid positions, the rest test."""
    n_train = round(float(n * shares[0]))
    n_valid = min(n - n_train, round(float(n * shares[1])))
    assignment = np.full(n, 2, np.int64)
    order = np.random.default_rng(seed).permutation(n)
    assignment[order[:n_train]] = 0
    assignment[order[n_train:n_train + n_valid]] = 1
    return assignment


def polygon_split(classes: npt.ArrayLike, names: Sequence[str], shares: npt.NDArray[np.float64],
                  seed: int) -> IntArray:
    """Split index of each polygon: whole polygons, per class, by proportions (seeded).

    For a class of ``n`` polygons, the validation and test sets get
    ``max(1, round(n · share))`` polygons each when their share is positive, the training set
    the rest (at least one, taken from the larger of the two when needed); the polygons
    are drawn at random. So a class with enough polygons has at least one in every set
    that has a share.

    Args:
        classes: The class code of each polygon.
        names: The class name of each code (for messages).
        shares: From :func:`proportions`.
        seed: Makes the draw repeatable.

    Raises:
        InputError: a class has fewer polygons than there are sets with a share (naming
            the class and the set it would leave empty: training, then validation, then test).
    """
    codes = np.asarray(classes, np.int64)
    assignment = np.zeros(len(codes), np.int64)
    rng = np.random.default_rng(seed)
    needed = [split for split in range(len(SPLITS)) if shares[split] > 0]  # train first, then valid, then test
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        n = len(members)
        name = names[int(code)] if 0 <= int(code) < len(names) else str(int(code))
        if n < len(needed):
            missing = ("training", "validation", "test")[needed[n]]
            raise InputError(f"class '{name}' has {n} polygon(s): a whole polygon goes to one set, so these "
                             f"proportions would leave '{name}' no {missing} polygon. Digitise more polygons of "
                             f"'{name}', or set the proportion of that set to 0.", "POLYGONS")
        counts = [max(1, round(n * float(shares[split]))) if shares[split] > 0 else 0 for split in range(3)]
        while shares[0] > 0 and n - counts[1] - counts[2] < 1:  # give training at least one: take from the larger
            larger = 1 if counts[1] >= counts[2] else 2
            counts[larger] -= 1
        order = members[rng.permutation(n)]
        assignment[order[:counts[1]]] = 1
        assignment[order[counts[1]:counts[1] + counts[2]]] = 2
        assignment[order[counts[1] + counts[2]:]] = 0 if shares[0] > 0 else (1 if counts[1] else 2)
    return assignment


def field_split(values: Sequence[object], parameter: str = "SPLIT_FIELD") -> IntArray:
    """Split index of each polygon from its ``train``/``valid``/``test`` attribute (case and spaces ignored).

    Raises:
        InputError: any other value (listing the values found and how many polygons carry each).
    """
    index = {name: number for number, name in enumerate(SPLITS)}
    cleaned = [str(value).strip().lower() if value is not None else "" for value in values]
    bad = sorted({value for value in cleaned if value not in index})
    if bad:
        found = ", ".join(f"'{value}' ({cleaned.count(value)})" for value in bad)
        raise InputError(f"every polygon needs 'train', 'valid' or 'test' in this field; found {found}. Fix the "
                         "attribute, or leave SPLIT_FIELD empty to split by the proportions.", parameter)
    return np.array([index[value] for value in cleaned], np.int64)


def cap_per_class(assignment: IntArray, classes: IntArray, cap: int, seed: int,
                  groups: IntArray | None = None) -> BoolArray:
    """Which positions to keep so that each set holds at most ``cap`` positions of each class (random, seeded).

    With ``groups`` (the polygon of each position), the positions kept are spread evenly
    over the class's polygons: one at random from each polygon in turn, so that the
    narrow or small polygons (a riparian forest, a river) are not drowned by the big
    ones. ``cap`` 0 keeps everything.
    """
    keep = np.ones(len(assignment), dtype=bool)
    if cap <= 0:
        return keep
    rng = np.random.default_rng(seed)
    for split in range(len(SPLITS)):
        for code in np.unique(classes[assignment == split]):
            members = np.flatnonzero((assignment == split) & (classes == code))
            if len(members) <= cap:
                continue
            members = members[rng.permutation(len(members))]
            if groups is not None:
                owners = groups[members]
                order = np.argsort(owners, kind="stable")  # within each polygon, the random order is kept
                rank = np.empty(len(members), np.int64)
                sorted_owners = owners[order]
                starts = np.r_[0, np.flatnonzero(np.diff(sorted_owners)) + 1]
                lengths = np.diff(np.r_[starts, len(members)])
                rank[order] = np.arange(len(members)) - np.repeat(starts, lengths)
                members = members[np.argsort(rank, kind="stable")]  # first of every polygon, then second, ...
            keep[members[cap:]] = False
    return keep


def balance_classes(classes: IntArray, cap: int, seed: int) -> BoolArray:
    """Which positions to keep so that every class has the same number: the smallest class's count.

    With ``cap`` > 0 the number is at most ``cap``. Positions of class -1 (no class) are
    never kept. The positions kept are drawn at random (seeded).
    """
    keep = np.zeros(len(classes), dtype=bool)
    present = [code for code in np.unique(classes) if code >= 0]
    if not present:
        return keep
    count = min(int((classes == code).sum()) for code in present)
    if cap > 0:
        count = min(count, cap)
    rng = np.random.default_rng(seed)
    for code in present:
        members = np.flatnonzero(classes == code)
        keep[rng.choice(members, count, replace=False)] = True
    return keep
