"""OTBTF's application keys: what each key takes, reading a parameter dict, our names back to OTBTF's.

Values may be given as in pyotb: numbers, booleans, lists, a single path for an image
list, ``_`` for ``.`` in keys, and pyotb objects in ``sourceN.il``. Unknown keys are
refused with the closest supported one.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from otbtf_qgis.core.errors import InputError, OtbtfError
from otbtf_qgis.core.io.pyotb_inputs import is_pyotb_image
from otbtf_qgis.core.jobs.codec import convert_value

#: OTBTF's default tile size (output pixels), used along an axis whose companion is given.
OTBTF_DEFAULT_TILE = 16
SOURCE_KEY = re.compile(r"^source(\d+)\.(.+)$")


@dataclass(frozen=True)
class KeySpec:
    """One OTBTF parameter: the kind of its value and what it means."""

    kind: str  # images | int | float | bool | string | strings | path | output
    help: str


SERVE_SOURCE_KEYS: dict[str, KeySpec] = {
    "il": KeySpec("images", "image(s) of the source, stacked by band (several must share one grid)"),
    "rfieldx": KeySpec("int", "receptive field width (input pixels)"),
    "rfieldy": KeySpec("int", "receptive field height"),
    "placeholder": KeySpec("string", "model input fed by the source"),
    "nodata": KeySpec("float", "nodata value: output pixels on it get output.bv"),
}
SERVE_KEYS: dict[str, KeySpec] = {
    "model.dir": KeySpec("path", "SavedModel folder"),
    "model.fullyconv": KeySpec("bool", "fully convolutional (default off: one patch per output pixel)"),
    "model.userplaceholders": KeySpec("strings", "extra scalar inputs, name=value ..."),
    "model.tagsets": KeySpec("strings", "SavedModel tag set (only 'serve')"),
    "output.names": KeySpec("strings", "model outputs, stacked as bands"),
    "output.efieldx": KeySpec("int", "expression field width (output pixels)"),
    "output.efieldy": KeySpec("int", "expression field height"),
    "output.spcscale": KeySpec("float", "output pixel size / first source's (default 1)"),
    "output.bv": KeySpec("float", "value of output pixels on nodata input (default 0)"),
    "optim.disabletiling": KeySpec("bool", "let the engine choose the tiles"),
    "optim.tilesizex": KeySpec("int", "tile width in output pixels"),
    "optim.tilesizey": KeySpec("int", "tile height in output pixels"),
    "out": KeySpec("output", "output GeoTIFF [pixel type], extended file name allowed"),
}
EXTRACTION_SOURCE_KEYS: dict[str, KeySpec] = {
    "il": KeySpec("images", "image(s) of the source, stacked by band (same size)"),
    "patchsizex": KeySpec("int", "patch width"),
    "patchsizey": KeySpec("int", "patch height"),
    "out": KeySpec("output", "patches image [pixel type] (default float)"),
    "nodata": KeySpec("float", "reject patches holding this value in any band"),
}
EXTRACTION_KEYS: dict[str, KeySpec] = {
    "vec": KeySpec("path", "points (patch centres)"),
    "field": KeySpec("string", "class field of the points (for outlabels)"),
    "outlabels": KeySpec("output", "class labels image, 1 x N [pixel type] (default uint8)"),
}

#: Our parameter names in errors, and the OTBTF keys they stand for ("{n}": the source number).
SERVE_PARAMETER_KEYS: dict[str, str] = {
    "SOURCES": "source{n}.il", "RFIELDS": "source{n}.rfieldx/rfieldy", "PLACEHOLDERS": "source{n}.placeholder",
    "NODATA": "source{n}.nodata", "MODEL": "model.dir", "FULLYCONV": "model.fullyconv",
    "USER_PLACEHOLDERS": "model.userplaceholders", "OUTPUT_NAMES": "output.names",
    "EFIELD": "output.efieldx/efieldy", "SPCSCALE": "output.spcscale", "BACKGROUND": "output.bv",
    "TILE_SIZE": "optim.tilesizex/tilesizey", "OUTPUT_TYPE": "out", "CREATION_OPTIONS": "out", "REGION": "out",
    "OUTPUT": "out",
}
EXTRACTION_PARAMETER_KEYS: dict[str, str] = {
    "SOURCES": "source{n}.il", "PATCH_SIZES": "source{n}.patchsizex/patchsizey", "NODATA": "source{n}.nodata",
    "POINTS": "vec", "FIELD": "field", "OUTPUT_DIR": "source{n}.out",
}


def _as_int(value: Any, key: str) -> int:
    number: int = convert_value(value, int, key)
    if number < 1:
        raise InputError(f"expected a positive integer, got {number}.", key)
    return number


def _as_float(value: Any, key: str) -> float:
    number: float = convert_value(value, float, key)
    return number


def _as_bool(value: Any, key: str) -> bool:
    flag: bool = convert_value(value, bool, key)
    return flag


def _as_images(value: Any, key: str) -> list[Any]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise InputError("give at least one image.", key)
    for item in values:
        if not (isinstance(item, (str, os.PathLike)) or is_pyotb_image(item)):
            raise InputError(f"{item!r} is not an image: give file paths or pyotb objects.", key)
        if isinstance(item, (str, os.PathLike)) and not os.fspath(item).strip():
            raise InputError("an image path is empty.", key)
    return values


def _as_strings(value: Any, key: str) -> list[str]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    words = []
    for item in values:
        if not isinstance(item, str):
            raise InputError(f"expected text, got {item!r}.", key)
        words.extend(item.split())  # OTBTF: "names can be separated by spaces"
    return words


def _as_text(value: Any, key: str, kind: str) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if kind == "path" and isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise InputError(f"expected {'a path' if kind == 'path' else 'text'}, got {value!r}.", key)
    return value


CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "images": _as_images,
    "int": _as_int,
    "float": _as_float,
    "bool": _as_bool,
    "strings": _as_strings,
    "string": lambda value, key: _as_text(value, key, "string"),
    "path": lambda value, key: _as_text(value, key, "path"),
    "output": lambda value, key: value,  # parsed by the application (box or not)
}


@dataclass(frozen=True)
class Application:
    """An OTBTF application's keys: per source (``source<N>.<key>``) and global, and the required ones."""

    name: str
    source_keys: dict[str, KeySpec]
    keys: dict[str, KeySpec]
    required: tuple[str, ...]
    source_required: tuple[str, ...]


SERVE = Application("TensorflowModelServe", SERVE_SOURCE_KEYS, SERVE_KEYS, ("model.dir", "out"), ("il",))
EXTRACTION = Application("PatchesExtraction", EXTRACTION_SOURCE_KEYS, EXTRACTION_KEYS, ("vec",),
                          ("il", "patchsizex", "patchsizey", "out"))


def supported_keys(application: Application) -> list[str]:
    """The keys of an application, per-source ones as ``source<N>.<key>``."""
    return [*(f"source<N>.{key}" for key in application.source_keys), *application.keys]


def key_spec(application: Application, key: str) -> KeySpec:
    """The spec of ``key`` (already normalised), or an :class:`InputError` naming it."""
    match = SOURCE_KEY.match(key)
    if match and int(match.group(1)) >= 1 and match.group(2) in application.source_keys:
        return application.source_keys[match.group(2)]
    if key in application.keys:
        return application.keys[key]
    number = match.group(1) if match else "1"
    candidates = [*(f"source{number}.{k}" for k in application.source_keys), *application.keys]
    close = difflib.get_close_matches(key, candidates, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise InputError(f"'{key}' is not a parameter of {application.name} supported here.{hint} Supported keys: "
                     f"{', '.join(supported_keys(application))} (N = 1, 2, ...).", key)


def normalised_key(key: Any) -> str:
    """``key`` as OTBTF spells it: no leading dash, ``_`` read as ``.`` (pyotb's keyword arguments)."""
    if not isinstance(key, str) or not key.strip():
        raise InputError(f"{key!r} is not a parameter key.", str(key))
    # pyotb accepts "_" for "." (keyword arguments); no OTBTF key has an underscore.
    return key.strip().lstrip("-").replace("_", ".")


@dataclass(frozen=True)
class Parameters:
    """A parameter dict read: the values of each source (in order) and the global values."""

    sources: list[dict[str, Any]]
    values: dict[str, Any]


def read_parameters(application: Application, params: Mapping[str, Any]) -> Parameters:
    """Check and convert the keys and values of ``params``; group per-source keys by source."""
    if not isinstance(params, Mapping):
        raise InputError(f"{application.name} takes a dict of parameters, got {type(params).__name__}.", "PARAMS")
    per_source: dict[int, dict[str, Any]] = {}
    values: dict[str, Any] = {}
    for raw_key, raw_value in params.items():
        key = normalised_key(raw_key)
        spec = key_spec(application, key)
        if raw_value is None:
            continue  # unset, as pyotb's None
        value = CONVERTERS[spec.kind](raw_value, key)
        match = SOURCE_KEY.match(key)
        target = per_source.setdefault(int(match.group(1)), {}) if match else values
        name = match.group(2) if match else key
        if name in target:
            raise InputError(f"'{key}' is given twice (as '{raw_key}' and another spelling).", key)
        target[name] = value
    if not per_source:
        raise InputError("no source given: set source1.il (and the other source1.* keys).", "source1.il")
    count = max(per_source)
    missing_sources = [n for n in range(1, count + 1) if n not in per_source]
    if missing_sources:
        raise InputError(f"sources are numbered from 1 without gaps: source{missing_sources[0]} is missing (keys "
                         f"of source{count} are given).", f"source{missing_sources[0]}.il")
    for number in range(1, count + 1):
        for name in application.source_required:
            if name not in per_source[number]:
                raise InputError(f"source{number}.{name} is required ({application.source_keys[name].help}).",
                                 f"source{number}.{name}")
    for key in application.required:
        if key not in values:
            raise InputError(f"{key} is required ({application.keys[key].help}).", key)
    return Parameters([per_source[n] for n in range(1, count + 1)], values)


def renamed(exc: OtbtfError, keys: Mapping[str, str], sources: int) -> OtbtfError:
    """``exc`` with our parameter names (in ``parameter`` and in the message) replaced by OTBTF keys."""
    number = "1" if sources == 1 else "N"

    def key_of(name: str) -> str:
        return keys[name].replace("{n}", number)

    message = re.sub(r"\b(" + "|".join(sorted(keys, key=len, reverse=True)) + r")\b",
                     lambda match: key_of(match.group(1)), exc.message)
    parameter = key_of(exc.parameter) if exc.parameter is not None and exc.parameter in keys else exc.parameter
    renamed = type(exc)(message, parameter)
    renamed.__cause__ = exc.__cause__
    return renamed


def pair(values: Mapping[str, Any], x_key: str, y_key: str) -> tuple[int, ...]:
    """``(x, y)`` from two OTBTF keys: empty when neither is given, OTBTF's default 1 for a missing one."""
    x, y = values.get(x_key), values.get(y_key)
    if x is None and y is None:
        return ()
    return (x if x is not None else 1, y if y is not None else 1)
