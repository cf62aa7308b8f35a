"""Class values to integer labels, and the metadata that carries the mapping along.

Rule (the same everywhere): string classes are sorted alphabetically and numbered
``0 .. K-1``; integer classes keep their value. Patch selection writes the names of the
classes (index → name) as the JSON list ``OTBTF_CLASS_NAMES`` in the metadata of its
point layers and label raster; extraction reuses that list when it finds it, so train,
valid and test points get the same numbering even if a split lacks a class.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from otbtf_qgis.core.data.formats import CLASS_NAMES_ITEM
from otbtf_qgis.core.errors import InputError


@dataclass(frozen=True)
class ClassLabels:
    """Integer labels for a list of class values.

    Attributes:
        codes: The integer label of each value.
        mapping: Class name → label (for integer classes, ``str(value) → value``).
        names: Index → name list for ``OTBTF_CLASS_NAMES`` (integer classes: ``str(i)``
            for ``0 .. max``).
    """

    codes: npt.NDArray[np.int64]
    mapping: dict[str, int]
    names: list[str]


def _as_integer(value: Any, parameter: str) -> int:
    if isinstance(value, (int, np.integer)):
        return int(value)
    number = float(value)
    if not number.is_integer():
        raise InputError(f"the class value {value!r} is not an integer. Use integer or text classes.", parameter)
    return int(number)


def class_labels(values: Sequence[Any], kind: str, parameter: str,
                 known_names: Sequence[str] | None = None) -> ClassLabels:
    """Number class values following the module's rule.

    Args:
        values: One class value per sample (no ``None``).
        kind: The field kind: ``integer``, ``real`` (integral values only) or ``string``.
        parameter: The class field parameter, named in errors.
        known_names: Index → name list to follow for string classes (from ``OTBTF_CLASS_NAMES``).

    Raises:
        InputError: a real value is not integral, an integer is negative, or a string
            class is missing from ``known_names``.
    """
    if kind == "string":
        texts = [str(v) for v in values]
        names = list(known_names) if known_names else sorted(set(texts))
        mapping = {name: index for index, name in enumerate(names)}
        unknown = sorted(set(texts) - set(mapping))
        if unknown:
            raise InputError(f"classes {', '.join(unknown)} are not among the classes recorded with the layer "
                             f"({', '.join(names)}). Select the points again from the same polygons.", parameter)
        return ClassLabels(np.array([mapping[t] for t in texts], np.int64), mapping, names)
    codes = np.array([_as_integer(v, parameter) for v in values], np.int64)
    if codes.size and codes.min() < 0:
        raise InputError(f"class values must be >= 0, found {int(codes.min())}.", parameter)
    present = sorted({int(c) for c in codes})
    top = present[-1] if present else -1
    return ClassLabels(codes, {str(v): v for v in present}, [str(i) for i in range(top + 1)])


def names_from_metadata(metadata: Mapping[str, str] | None) -> list[str] | None:
    """The ``OTBTF_CLASS_NAMES`` list of a metadata dict, or ``None`` when absent or invalid."""
    text = (metadata or {}).get(CLASS_NAMES_ITEM)
    if not text:
        return None
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return names


def mapping_from_names(names: Sequence[str]) -> dict[str, int]:
    """``["crop", "water"]`` → ``{"crop": 0, "water": 1}``."""
    return {name: index for index, name in enumerate(names)}
