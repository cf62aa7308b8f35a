"""What users type: sizes, lists and per-source lists, parsed in one place (standard library only).

One grammar for every parameter that takes several values, in the QGIS dialogs, on the
command line and in Python:

- **Lists** (``OUTPUT_NAMES``, ``CREATION_OPTIONS``, ``USER_PLACEHOLDERS``, …): items
  separated by commas, semicolons or line breaks; spaces around an item are ignored
  (``a, b;c`` → ``a``, ``b``, ``c``).
- **Per-source lists** (``PATCH_SIZES``, ``SOURCE_NAMES``, ``NODATA``, ``RFIELDS``,
  ``PLACEHOLDERS``): the same separators, and either one value for every source or one
  value per source, in the order of the sources. An empty entry takes that source's
  default (``64;;32``: the second source's default), and so does an empty text for all.
  Names (``SOURCE_NAMES``, ``PLACEHOLDERS``) are never repeated for every source: they
  take one entry per source.
- **Sizes** are ``(x, y)`` = (columns, rows), as OTBTF's ``patchsizex/patchsizey`` and
  ``rfieldx/rfieldy``: ``64`` (square) or ``64x32``.

Values are read by the parameter's own rules (a size, a number, ``none``); every error
names the parameter, shows the text and says how to write it.
"""

from __future__ import annotations

import os
import re
from typing import Any, Protocol, Union, runtime_checkable

from otbtf_qgis.core.errors import InputError

#: What separates the items of a list: commas, semicolons, line breaks.
LIST_SEPARATORS = re.compile(r"[,;\n]")
_SIZE = re.compile(r"^\s*(\d+)\s*(?:[xX*]\s*(\d+))?\s*$")


def split_list(text: str) -> list[str]:
    """The items of a list typed as text, empty entries kept: ``"a, b;;c"`` → ``["a", "b", "", "c"]``.

    An empty (or blank) text is an empty list.
    """
    if not str(text).strip():
        return []
    return [item.strip() for item in LIST_SEPARATORS.split(str(text))]


def list_items(text: str) -> list[str]:
    """The non-empty items of a list typed as text: ``"a, b;;c"`` → ``["a", "b", "c"]``."""
    return [item for item in split_list(text) if item]


def per_source(text: str, count: int, parameter: str, *, repeat: bool = True) -> list[str]:
    """One entry per source from a per-source list (see the module docstring); ``""`` means the default.

    Args:
        text: What the user typed.
        count: The number of sources.
        parameter: The parameter named in errors.
        repeat: Whether a single value applies to every source (not for names).

    Raises:
        InputError: naming ``parameter`` when the number of entries is neither ``count``
            nor (with ``repeat``) one.
    """
    entries = split_list(text)
    if not entries:
        return [""] * count
    if len(entries) == 1 and repeat:
        return entries * count
    if len(entries) != count:
        one = "one value for every source or " if repeat else ""
        raise InputError(f"'{text}' gives {len(entries)} value(s) for {count} source(s): give {one}one value per "
                         "source, in the order of the sources, separated by commas or semicolons (an empty value "
                         "takes that source's default).", parameter)
    return entries


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
    """One size per source from a per-source list of sizes (``"64"``, ``"64,32x32"``); every source needs one.

    Raises:
        InputError: a size is invalid or missing, or the number of sizes is neither 1 nor ``count``.
    """
    entries = per_source(text, count, parameter)
    if not any(entries):
        raise InputError("no size given: give one size (64) or one per source (64,32x32).", parameter)
    sizes = []
    for number, entry in enumerate(entries, start=1):
        if not entry:
            raise InputError(f"'{text}' gives no size for source {number}: every source needs one.", parameter)
        sizes.append(parse_size(entry, parameter))
    return sizes


def parse_nodata(entry: str, parameter: str = "NODATA") -> tuple[float | None, bool]:
    """One nodata entry as ``(value, use)``.

    A number gives ``(x, True)``; empty ``(None, True)`` (the raster's own nodata);
    ``none`` ``(None, False)`` (no value is nodata).

    Raises:
        InputError: naming ``parameter`` for anything else.
    """
    text = entry.strip()
    if not text:
        return (None, True)
    if text.lower() == "none":
        return (None, False)
    try:
        return (float(text), True)
    except ValueError:
        raise InputError(f"'{entry}' is not a nodata value: give a number, 'none' (no nodata) or nothing (the "
                         "raster's own nodata).", parameter) from None


@runtime_checkable
class PyotbImage(Protocol):
    """What the core uses of a pyotb object: its OTB application and the key of its output image."""

    @property
    def app(self) -> Any:
        """The ``otbApplication.Application`` computing the image."""

    @property
    def output_image_key(self) -> str:
        """The parameter key of the output image (e.g. ``"out"``)."""


#: A raster given to a job: a file path, or (from Python) a pyotb object (see
#: :mod:`otbtf_qgis.core.io.pyotb_inputs`).
RasterInput = Union[str, os.PathLike[str], PyotbImage]  # noqa: UP007 - evaluated at run time
