"""Sizes given as text (``"64"``, ``"64x32"``): the standard library only, for the Processing side too.

Sizes are ``(x, y)`` = (columns, rows), as OTBTF's ``patchsizex/patchsizey`` and
``rfieldx/rfieldy``.
"""

from __future__ import annotations

import re

from otbtf_qgis.core.errors import InputError

_SIZE = re.compile(r"^\s*(\d+)\s*(?:[xX*]\s*(\d+))?\s*$")


def parse_size(text: str | int, parameter: str, minimum: int = 1) -> tuple[int, int]:
    """``"64"`` → ``(64, 64)``; ``"64x32"`` → ``(64, 32)`` (x = columns, y = rows).

    Raises:
        InputError: naming ``parameter`` for text that is not a size, or a value below ``minimum``.
    """
    match = _SIZE.match(str(text))
    if not match:
        raise InputError(f"'{text}' is not a size: give one number (64) or columns x rows (64x32).", parameter)
    x = int(match.group(1))
    y = int(match.group(2)) if match.group(2) is not None else x
    if x < minimum or y < minimum:
        raise InputError(f"'{text}' must be at least {minimum} in each direction.", parameter)
    return (x, y)


def parse_sizes(text: str, count: int, parameter: str) -> list[tuple[int, int]]:
    """One size for all ``count`` sources, or one per source, separated by commas or spaces.

    Raises:
        InputError: a size is invalid or the number of sizes is neither 1 nor ``count``.
    """
    items = [item for item in re.split(r"[,;\s]+", str(text).strip()) if item]
    if not items:
        raise InputError("no patch size given: give one size (64) or one per source (64,32x32).", parameter)
    sizes = [parse_size(item, parameter) for item in items]
    if len(sizes) == 1:
        return sizes * count
    if len(sizes) != count:
        raise InputError(f"{len(sizes)} sizes given for {count} sources: give one size for all or exactly one per "
                         "source, in the order of the sources.", parameter)
    return sizes
