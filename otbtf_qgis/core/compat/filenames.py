"""OTB output file names: pixel types after the name and extended file names (``?&gdal:co:…&box=…``)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.io.windows import Window

#: OTB's output pixel types (``otbcli ... -out file.tif <type>``) and their numpy names.
OTB_PIXEL_TYPES: dict[str, str] = {
    "uint8": "uint8", "int16": "int16", "uint16": "uint16", "int32": "int32", "uint32": "uint32",
    "float": "float32", "double": "float64", "float32": "float32", "float64": "float64",
}
OTB_COMPLEX_TYPES = ("cint16", "cint32", "cfloat", "cdouble")
#: Extended file name options accepted without effect (see the module docstring).
IGNORED_WRITER_OPTIONS: dict[str, tuple[str, ...]] = {
    "writegeom": ("true", "false", "on", "off", "1", "0", "yes", "no"),
    "streaming:type": ("auto", "tiled", "stripped", "none"),
    "streaming:sizemode": ("auto", "nbsplits", "height"),
    "streaming:sizevalue": (),
}


@dataclass(frozen=True)
class OutputFile:
    """An output of an OTB application: file, pixel type and extended file name options.

    Attributes:
        path: The file (without the extended file name).
        pixel_type: numpy name of the pixel type given after the file name, or ``None``.
        creation_options: GDAL creation options from ``&gdal:co:KEY=VALUE``.
        box: The region to write, from ``&box=x:y:w:h``, or ``None`` for all of it.
    """

    path: str
    pixel_type: str | None = None
    creation_options: tuple[str, ...] = ()
    box: Window | None = None


def parse_pixel_type(text: str, key: str) -> str:
    """The numpy name of an OTB pixel type (``uint8`` … ``float``, ``double``).

    Raises:
        InputError: complex or unknown pixel types.
    """
    name = str(text).strip().lower()
    if name in OTB_PIXEL_TYPES:
        return OTB_PIXEL_TYPES[name]
    if name in OTB_COMPLEX_TYPES:
        raise InputError(f"complex pixel type '{text}' is not supported: choose one of "
                         f"{', '.join(list(OTB_PIXEL_TYPES)[:7])}.", key)
    raise InputError(f"'{text}' is not an OTB pixel type: choose one of {', '.join(list(OTB_PIXEL_TYPES)[:7])}.", key)


def parse_extended_filename(text: str, key: str, allow_box: bool = True) -> OutputFile:
    """Split an OTB extended file name ``file.tif?&opt=value&...`` into an :class:`OutputFile`.

    Supported: ``gdal:co:KEY=VALUE`` (creation options), ``box=x:y:w:h`` (when
    ``allow_box``), and ``writegeom`` / ``streaming:*`` (accepted, no effect).

    Raises:
        InputError: a malformed or unsupported option, naming ``key``.
    """
    path, question, options = str(text).partition("?")
    if not path.strip():
        raise InputError("no output file name given.", key)
    if not question:
        return OutputFile(path)
    if not options.startswith("&"):
        raise InputError(f"'{text}': extended file name options start with '?&' (e.g. "
                         "out.tif?&gdal:co:COMPRESS=DEFLATE).", key)
    creation: list[str] = []
    box = None
    supported = ["gdal:co:<KEY>=<VALUE>", *(["box=<x>:<y>:<width>:<height>"] if allow_box else []),
                 *(f"{name}=..." for name in IGNORED_WRITER_OPTIONS)]
    for item in options.split("&")[1:]:
        if not item.strip():
            continue
        name, equal, value = item.partition("=")
        option = name.strip().lower()
        if not equal:
            raise InputError(f"'{item}' in '{text}' is not option=value.", key)
        if option.startswith("gdal:co:") and len(option) > len("gdal:co:"):
            creation.append(f"{name.strip()[len('gdal:co:'):].upper()}={value.strip()}")
        elif option == "box" and allow_box:
            box = _parse_box(value, text, key)
        elif option in IGNORED_WRITER_OPTIONS:
            allowed = IGNORED_WRITER_OPTIONS[option]
            valid = value.strip().lower() in allowed if allowed else _is_number(value)
            if not valid:
                raise InputError(f"'{item}' in '{text}': {option} takes "
                                 f"{' | '.join(allowed) if allowed else 'a number'}.", key)
        else:
            raise InputError(f"the extended file name option '{name.strip()}' of '{text}' is not supported here. "
                             f"Supported: {', '.join(supported)}.", key)
    return OutputFile(path, None, tuple(creation), box)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_box(value: str, text: str, key: str) -> Window:
    parts = value.split(":")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) != 4 or min(numbers[:2]) < 0 or min(numbers[2:]) <= 0:
        raise InputError(f"box '{value}' in '{text}' is not startx:starty:sizex:sizey (pixels of the output, "
                         "sizes > 0).", key)
    return Window(*numbers)


def parse_output(value: Any, key: str, allow_box: bool = True) -> OutputFile:
    """An output value: ``"file.tif?&..."``, or ``[file, pixel type]`` as ``otbcli`` reads ``-out file.tif uint8``.

    Raises:
        InputError: naming ``key``.
    """
    if isinstance(value, (list, tuple)):
        if len(value) not in (1, 2) or not all(isinstance(v, (str, os.PathLike)) for v in value):
            raise InputError(f"{list(value)!r} is not a file name optionally followed by a pixel type.", key)
        parsed = parse_extended_filename(os.fspath(value[0]), key, allow_box)
        if len(value) == 2:
            return dataclasses.replace(parsed, pixel_type=parse_pixel_type(os.fspath(value[1]), key))
        return parsed
    if isinstance(value, (str, os.PathLike)):
        return parse_extended_filename(os.fspath(value), key, allow_box)
    raise InputError(f"{value!r} is not a file name.", key)
