"""OTBTF-compatible entry points: ``TensorflowModelServe`` and ``PatchesExtraction`` with OTBTF's keys.

People who run OTBTF have parameter dictionaries (pyotb, ``otbApplication``) and
``otbcli_*`` command lines. The same ones run on our engine, changed only in the program
or import name::

    from otbtf_qgis.core.otbtf_compat import TensorflowModelServe
    TensorflowModelServe({"source1.il": ["xs.tif"], "source1.rfieldx": 64, "source1.rfieldy": 64,
                          "source1.placeholder": "input_xs", "model.dir": "model", "model.fullyconv": True,
                          "output.names": ["predictions_crop16"], "output.efieldx": 32, "output.efieldy": 32,
                          "out": "map.tif?&gdal:co:COMPRESS=DEFLATE"})

    python -m otbtf_qgis.core.otbtf_compat TensorflowModelServe -source1.il xs.tif -source1.rfieldx 64 ...

The keys map onto :class:`~otbtf_qgis.core.serving.config.ServeConfig` and
:func:`~otbtf_qgis.core.extraction.extract_patches`; any number of sources
``source1`` … ``sourceN`` is taken from the keys (no ``OTB_TF_NSOURCES`` needed). Where
OTBTF has a default, it is OTBTF's: ``model.fullyconv`` off, no nodata unless
``sourceN.nodata`` is given, receptive and expression fields of 1 along an axis whose
``x``/``y`` companion is given, outputs written as ``float`` (``float32``; labels of
PatchesExtraction ``uint8``) unless a pixel type follows the file name, as ``otbcli``
allows (``-out map.tif uint8``). Two defaults are ours, and only where OTBTF would have
to be told: without any ``rfield``/``efield`` keys, the fields come from the model
(``otbtf_model.json``, then its signature), and without ``optim.tilesize*`` the tile size
is chosen automatically (OTBTF's 16 is about 20× slower); the pixels never depend on
the tile size, so ``optim.*`` only changes speed and memory (tiles are square, of the
larger size given). Values may be given as in pyotb: numbers, booleans, lists, a single
path for an image list, ``_`` for ``.`` in keys, and pyotb objects in ``sourceN.il``.

OTB extended file names on output files: ``&gdal:co:KEY=VALUE`` becomes a GeoTIFF
creation option (replacing our defaults key by key); ``&box=x:y:w:h`` (on
TensorflowModelServe's ``out``) writes only that region of the output, in output
pixels; ``&writegeom=`` and ``&streaming:type/sizemode/sizevalue=`` are accepted and
have no effect (no ``.geom`` sidecar is ever written; our engine streams by tiles
anyway). Any other option, and any key not listed by ``-help``, is refused with an error
naming it and listing what is supported.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from osgeo import gdal

from otbtf_qgis.core.config import convert_value
from otbtf_qgis.core.errors import CancelledError, InputError, OtbtfError, RasterIOError
from otbtf_qgis.core.extraction import SourceSpec, default_source_names, extract_patches
from otbtf_qgis.core.outputs import partial_name
from otbtf_qgis.core.progress import NullReporter, Reporter, TextReporter
from otbtf_qgis.core.pyotb_io import ScratchRasters, is_pyotb_image
from otbtf_qgis.core.raster import (
    ensure_writable_parent,
    gdal_array_type,
    numpy_to_gdal_type,
    open_raster,
)
from otbtf_qgis.core.serving.config import ServeConfig, SourceConfig
from otbtf_qgis.core.windows import Window

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


# ------------------------------------------------------------------------------------ values
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
class _Application:
    name: str
    source_keys: dict[str, KeySpec]
    keys: dict[str, KeySpec]
    required: tuple[str, ...]
    source_required: tuple[str, ...]


SERVE = _Application("TensorflowModelServe", SERVE_SOURCE_KEYS, SERVE_KEYS, ("model.dir", "out"), ("il",))
EXTRACTION = _Application("PatchesExtraction", EXTRACTION_SOURCE_KEYS, EXTRACTION_KEYS, ("vec",),
                          ("il", "patchsizex", "patchsizey", "out"))


def supported_keys(application: _Application) -> list[str]:
    """The keys of an application, per-source ones as ``source<N>.<key>``."""
    return [*(f"source<N>.{key}" for key in application.source_keys), *application.keys]


def _key_spec(application: _Application, key: str) -> KeySpec:
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


def _normalised_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InputError(f"{key!r} is not a parameter key.", str(key))
    # pyotb accepts "_" for "." (keyword arguments); no OTBTF key has an underscore.
    return key.strip().lstrip("-").replace("_", ".")


@dataclass(frozen=True)
class _Parameters:
    sources: list[dict[str, Any]]
    values: dict[str, Any]


def _read_parameters(application: _Application, params: Mapping[str, Any]) -> _Parameters:
    """Check and convert the keys and values of ``params``; group per-source keys by source."""
    if not isinstance(params, Mapping):
        raise InputError(f"{application.name} takes a dict of parameters, got {type(params).__name__}.", "PARAMS")
    per_source: dict[int, dict[str, Any]] = {}
    values: dict[str, Any] = {}
    for raw_key, raw_value in params.items():
        key = _normalised_key(raw_key)
        spec = _key_spec(application, key)
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
    return _Parameters([per_source[n] for n in range(1, count + 1)], values)


def _renamed(exc: OtbtfError, keys: Mapping[str, str], sources: int) -> OtbtfError:
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


def _pair(values: Mapping[str, Any], x_key: str, y_key: str) -> tuple[int, ...]:
    """``(x, y)`` from two OTBTF keys: empty when neither is given, OTBTF's default 1 for a missing one."""
    x, y = values.get(x_key), values.get(y_key)
    if x is None and y is None:
        return ()
    return (x if x is not None else 1, y if y is not None else 1)


# -------------------------------------------------------------------- TensorflowModelServe
@dataclass(frozen=True)
class ServeRequest:
    """A TensorflowModelServe call translated: the serving config and the region to write.

    Attributes:
        config: The serving configuration (our engine's).
        box: The region of the output grid to write (``&box=``), or ``None`` for all of it.
    """

    config: ServeConfig
    box: Window | None


def serve_request(params: Mapping[str, Any]) -> ServeRequest:
    """Translate TensorflowModelServe parameters into a :class:`ServeRequest` (nothing is run).

    Raises:
        InputError: an unknown key, a bad value or a missing required key (named as in OTBTF).
    """
    parameters = _read_parameters(SERVE, params)
    values = parameters.values
    try:
        output = parse_output(values["out"], "out", allow_box=True)
        tags = values.get("model.tagsets", [])
        if any(tag != "serve" for tag in tags):
            raise InputError(f"only the 'serve' tag set of a SavedModel is loaded, not {' '.join(tags)}.",
                             "model.tagsets")
        tile_size = 0
        sizes = [values.get("optim.tilesizex"), values.get("optim.tilesizey")]
        if not values.get("optim.disabletiling", False) and any(size is not None for size in sizes):
            tile_size = max(size if size is not None else OTBTF_DEFAULT_TILE for size in sizes)
        sources = tuple(
            SourceConfig(paths=tuple(source["il"]),
                         receptive_field=_pair(source, "rfieldx", "rfieldy"),
                         placeholder=source.get("placeholder", ""),
                         nodata=source.get("nodata"),
                         use_nodata="nodata" in source)  # OTBTF ignores a raster's own nodata
            for source in parameters.sources)
        config = ServeConfig(
            sources=sources,
            model=values["model.dir"],
            output=output.path,
            output_names=tuple(values.get("output.names", ())),
            expression_field=_pair(values, "output.efieldx", "output.efieldy"),
            fully_convolutional=values.get("model.fullyconv", False),
            spacing_scale=values.get("output.spcscale", 1.0),
            tile_size=tile_size,
            background=values.get("output.bv", 0.0),
            user_placeholders=tuple(values.get("model.userplaceholders", ())),
            output_type=output.pixel_type or "float32",  # type: ignore[arg-type]
            creation_options=output.creation_options,
        )
    except OtbtfError as exc:
        raise _renamed(exc, SERVE_PARAMETER_KEYS, len(parameters.sources)) from exc
    return ServeRequest(config, output.box)


def TensorflowModelServe(params: Mapping[str, Any], reporter: Reporter | None = None) -> dict[str, Any]:  # noqa: N802
    """Run OTBTF's TensorflowModelServe with its parameter dictionary, on our serving engine.

    Args:
        params: OTBTF's keys (see the module docstring), e.g. ``{"source1.il": ["xs.tif"],
            "source1.rfieldx": 64, ..., "out": "map.tif?&gdal:co:COMPRESS=DEFLATE"}``.
            ``source<N>.il`` may hold pyotb objects.
        reporter: Progress and cancel.

    Returns:
        The serving summary (``output`` path, size, geotransform, tiles, timings).

    Raises:
        InputError, ModelError, RasterIOError: naming the OTBTF key at fault.
    """
    reporter = reporter or NullReporter()
    request = serve_request(params)
    try:
        if request.box is None:
            from otbtf_qgis.core.serving import serve

            return serve(request.config, reporter)
        return _serve_box(request.config, request.box, reporter)
    except OtbtfError as exc:
        if isinstance(exc, CancelledError):
            raise
        raise _renamed(exc, SERVE_PARAMETER_KEYS, len(request.config.sources)) from exc


def _serve_box(config: ServeConfig, box: Window, reporter: Reporter) -> dict[str, Any]:
    """Serve the region ``box`` of the output grid into ``config.output``."""
    from otbtf_qgis.core.serving.engine import prepare

    with prepare(config, reporter.sub(0.0, 0.05)) as plan:
        grid = plan.geometry.window
        if box.col_off + box.width > grid.width or box.row_off + box.height > grid.height:
            raise InputError(f"box {box.col_off}:{box.row_off}:{box.width}:{box.height} leaves the output image "
                             f"({grid.width}x{grid.height} pixels).", "out")
        return plan.serve(config.output, box, "", reporter.sub(0.05, 1.0))


def _publish(items: Sequence[tuple[Path, Path, str | None, Sequence[str]]], parameter: str) -> None:
    """Write each temporary raster to its destination (pixel type, creation options), then publish all.

    Each item is ``(source, destination, numpy pixel type or None, creation options)``.
    A source that needs no change is moved. Destinations are
    written under temporary names and renamed only once all are written.
    """
    written: list[tuple[Path, Path]] = []
    try:
        for source, destination, pixel_type, options in items:
            ensure_writable_parent(destination, parameter)
            temporary = partial_name(destination)
            if pixel_type is None and not options:
                shutil.move(source, temporary)
            else:
                dataset = gdal.Open(str(source))
                kwargs: dict[str, Any] = {"format": "GTiff", "creationOptions": list(options)}
                if pixel_type is not None:
                    kwargs["outputType"] = numpy_to_gdal_type(pixel_type)
                try:
                    result = gdal.Translate(str(temporary), dataset, **kwargs)
                except RuntimeError as exc:
                    raise RasterIOError(f"cannot write '{destination}': {exc}. Check the folder, the free space and "
                                        "the creation options.", parameter) from exc
                if result is None:
                    raise RasterIOError(f"cannot write '{destination}'.", parameter)
                result = dataset = None
            written.append((temporary, destination))
    except BaseException:
        for temporary, _ in written:
            temporary.unlink(missing_ok=True)
        raise
    for temporary, destination in written:
        os.replace(temporary, destination)


# ------------------------------------------------------------------------ PatchesExtraction
@dataclass(frozen=True)
class ExtractionSource:
    """One PatchesExtraction source: its images, patch size, nodata and output."""

    images: tuple[Any, ...]
    patch_size: tuple[int, int]
    nodata: float | None
    output: OutputFile


@dataclass(frozen=True)
class ExtractionRequest:
    """A PatchesExtraction call translated.

    Attributes:
        sources: The sources, in order.
        points: The point layer (``vec``).
        class_field: The class field (``field``), used when ``labels`` is set.
        labels: The class labels image (``outlabels``), or ``None``.
    """

    sources: tuple[ExtractionSource, ...]
    points: str
    class_field: str
    labels: OutputFile | None


def extraction_request(params: Mapping[str, Any]) -> ExtractionRequest:
    """Translate PatchesExtraction parameters into an :class:`ExtractionRequest` (nothing is run).

    Raises:
        InputError: an unknown key, a bad value or a missing required key (named as in OTBTF).
    """
    parameters = _read_parameters(EXTRACTION, params)
    values = parameters.values
    sources = tuple(
        ExtractionSource(tuple(source["il"]), (source["patchsizex"], source["patchsizey"]), source.get("nodata"),
                         parse_output(source["out"], f"source{number}.out", allow_box=False))
        for number, source in enumerate(parameters.sources, start=1))
    labels = parse_output(values["outlabels"], "outlabels", allow_box=False) if "outlabels" in values else None
    class_field = values.get("field", "")
    if labels is not None and not class_field:
        raise InputError("outlabels needs the class field: give field.", "field")
    destinations = [s.output.path for s in sources] + ([labels.path] if labels else [])
    repeated = sorted({p for p in destinations if destinations.count(p) > 1})
    if repeated:
        raise InputError(f"two outputs are the same file ({', '.join(repeated)}).", "source1.out")
    return ExtractionRequest(sources, values["vec"], class_field if labels is not None else "", labels)


def PatchesExtraction(params: Mapping[str, Any], reporter: Reporter | None = None) -> dict[str, Any]:  # noqa: N802
    """Run OTBTF's PatchesExtraction with its parameter dictionary, on our extraction.

    Patches images are ``float32`` and labels ``uint8`` unless a pixel type follows the
    file name (as OTB's defaults); ``-source1.out patches.tif uint16`` keeps 16-bit data.
    Patch positions, acceptance and order follow :mod:`otbtf_qgis.core.extraction`.

    Args:
        params: OTBTF's keys: ``source<N>.il``, ``source<N>.patchsizex/y``, ``source<N>.out``,
            ``source<N>.nodata``, ``vec``, ``field``, ``outlabels``.
        reporter: Progress and cancel.

    Returns:
        ``n_samples``, ``rejected`` (count per reason), ``class_mapping`` and ``files`` (per key).

    Raises:
        InputError, RasterIOError: naming the OTBTF key at fault.
    """
    reporter = reporter or NullReporter()
    request = extraction_request(params)
    count = len(request.sources)
    names = default_source_names(count)
    try:
        near = Path(request.sources[0].output.path).resolve().parent
        with ScratchRasters(near, reporter) as scratch:
            specs = []
            for number, (name, source) in enumerate(zip(names, request.sources, strict=True), start=1):
                path = _source_file(scratch, source.images, name, f"source{number}.il")
                bands = open_raster(path, f"source{number}.il").RasterCount
                specs.append(SourceSpec(name, path, source.patch_size, (source.nodata,) * bands))
            outputs = {name: scratch.new_file(f"{name}_patches.tif") for name in names}
            labels_file = scratch.new_file("labels.tif") if request.labels is not None else None
            result = extract_patches(specs, request.points, request.class_field, outputs, labels_file,
                                     reporter.sub(0.0, 0.9))
            items: list[tuple[Path, Path, str | None, Sequence[str]]] = []
            files: dict[str, str] = {}
            for number, (name, source) in enumerate(zip(names, request.sources, strict=True), start=1):
                items.append(_conversion(outputs[name], source.output, "float32"))
                files[f"source{number}.out"] = source.output.path
            if request.labels is not None and labels_file is not None:
                labels_type = request.labels.pixel_type or "uint8"
                _check_labels_fit(labels_file, labels_type)
                items.append(_conversion(labels_file, request.labels, "uint8"))
                files["outlabels"] = request.labels.path
            _publish(items, "source1.out")
    except OtbtfError as exc:
        if isinstance(exc, CancelledError):
            raise
        raise _renamed(exc, EXTRACTION_PARAMETER_KEYS, count) from exc
    reporter.progress(1.0)
    reporter.info(f"kept {result.n_samples} samples, rejected {sum(result.rejected.values())}: "
                  + ", ".join(f"{v} {k}" for k, v in result.rejected.items()))
    mapping = result.class_labels.mapping if result.class_labels is not None else {}
    return {"n_samples": result.n_samples, "rejected": result.rejected, "class_mapping": mapping,
            "point_ids": result.point_ids, "files": files}


def _conversion(source: Path, output: OutputFile, default_type: str
                ) -> tuple[Path, Path, str | None, Sequence[str]]:
    """The :func:`_publish` item of a temporary output: converted only when the type or options differ."""
    wanted = output.pixel_type or default_type
    dataset = gdal.Open(str(source))
    current = gdal_array_type(dataset.GetRasterBand(1).DataType).name
    dataset = None
    options = ("BIGTIFF=IF_SAFER", *output.creation_options) if output.creation_options else ()
    return (source, Path(output.path), None if wanted == current else wanted, options)


def _check_labels_fit(labels_file: Path, pixel_type: str) -> None:
    import numpy as np

    values = gdal.Open(str(labels_file)).ReadAsArray()
    dtype = np.dtype(pixel_type)
    if dtype.kind in "iu" and values.size:
        limits = np.iinfo(dtype)
        if values.min() < limits.min or values.max() > limits.max:
            raise InputError(f"class values {values.min()}..{values.max()} do not fit in {dtype.name}: give a wider "
                             "pixel type after the file name (e.g. outlabels labels.tif int32).", "outlabels")


def _source_file(scratch: ScratchRasters, images: tuple[Any, ...], name: str, key: str) -> str:
    """One raster file for a source: its image, or a VRT stacking the bands of its images in order."""
    paths = scratch.paths(images, key)
    if len(paths) == 1:
        return paths[0]
    datasets = [open_raster(path, key) for path in paths]
    first = datasets[0]
    for path, dataset in zip(paths, datasets, strict=True):
        if (dataset.RasterXSize, dataset.RasterYSize) != (first.RasterXSize, first.RasterYSize):
            raise InputError(f"the images of a source are stacked by band and must have the same size: "
                             f"'{paths[0]}' is {first.RasterXSize}x{first.RasterYSize}, '{path}' is "
                             f"{dataset.RasterXSize}x{dataset.RasterYSize}.", key)
    target = scratch.new_file(f"{name}_stack.vrt")
    vrt = gdal.GetDriverByName("VRT").Create(str(target), first.RasterXSize, first.RasterYSize, 0)
    vrt.SetGeoTransform(first.GetGeoTransform())
    vrt.SetProjection(first.GetProjection())
    for path, dataset in zip(paths, datasets, strict=True):
        for band_number in range(1, dataset.RasterCount + 1):
            band = dataset.GetRasterBand(band_number)
            vrt.AddBand(band.DataType)
            stacked = vrt.GetRasterBand(vrt.RasterCount)
            stacked.SetMetadataItem("source_0", (
                f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(os.path.abspath(path))}</SourceFilename>'
                f"<SourceBand>{band_number}</SourceBand></SimpleSource>"), "new_vrt_sources")
    vrt.FlushCache()
    vrt = None
    return str(target)


# ---------------------------------------------------------------------------- command line
APPLICATIONS: dict[str, tuple[_Application, Callable[[Mapping[str, Any], Reporter | None], dict[str, Any]]]] = {
    "TensorflowModelServe": (SERVE, TensorflowModelServe),
    "PatchesExtraction": (EXTRACTION, PatchesExtraction),
}
KEY_TOKEN = re.compile(r"^-[A-Za-z][\w.:]*$")


def parse_command_line(application: str, tokens: Sequence[str]) -> dict[str, Any]:
    """Read ``otbcli``-style arguments (``-key value [value ...]``) into a parameter dict.

    A token ``-name`` starts a key (``-9999`` is a value); list keys take every value up
    to the next key, outputs a file name and an optional pixel type, booleans ``on``/``off``
    (or nothing, meaning on).

    Raises:
        InputError: an unknown key, a value without key, or a wrong number of values.
    """
    spec_of = APPLICATIONS[application][0]
    params: dict[str, Any] = {}
    current: str | None = None
    values: dict[str, list[str]] = {}
    for token in tokens:
        if KEY_TOKEN.match(token):
            current = token[1:]
            _key_spec(spec_of, _normalised_key(current))
            if current in values:
                raise InputError(f"-{current} is given twice.", current)
            values[current] = []
        elif current is None:
            raise InputError(f"'{token}' comes before any -key: write -key value.", "COMMAND")
        else:
            values[current].append(token)
    for key, given in values.items():
        kind = _key_spec(spec_of, _normalised_key(key)).kind
        if kind in ("images", "strings"):
            if not given:
                raise InputError(f"-{key} needs at least one value.", key)
            params[key] = given
        elif kind == "output":
            if len(given) not in (1, 2):
                raise InputError(f"-{key} takes a file name and optionally a pixel type, got {len(given)} values.",
                                 key)
            params[key] = given
        elif kind == "bool" and not given:
            params[key] = True
        elif len(given) != 1:
            raise InputError(f"-{key} takes one value, got {len(given)}: {' '.join(given) or 'none'}.", key)
        else:
            params[key] = given[0]
    return params


def usage(application: str | None = None) -> str:
    """Help text: the applications, or the keys of one."""
    if application is None:
        return ("usage: python -m otbtf_qgis.core.otbtf_compat {TensorflowModelServe|PatchesExtraction} "
                "-key value ...\n(-help after the application name lists its keys)\n")
    spec = APPLICATIONS[application][0]
    lines = [f"{application} (OTBTF keys; N = 1, 2, ... for each source)"]
    lines += [f"  -source<N>.{key:<14} {item.help}" for key, item in spec.source_keys.items()]
    lines += [f"  -{key:<24} {item.help}" for key, item in spec.keys.items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 ok, 1 error, 2 usage, 130 cancelled)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "-help", "--help"):
        sys.stdout.write(usage())
        return 0 if args else 2
    application = args[0]
    if application not in APPLICATIONS:
        sys.stderr.write(f"ERROR: unknown application '{application}'. Available: {', '.join(APPLICATIONS)}.\n")
        return 2
    if any(token in ("-h", "-help", "--help") for token in args[1:]):
        sys.stdout.write(usage(application))
        return 0
    reporter = TextReporter()
    try:
        params = parse_command_line(application, args[1:])
        if application == "TensorflowModelServe":
            from otbtf_qgis.core.worker import check_tensorflow

            check_tensorflow()
        result = APPLICATIONS[application][1](params, reporter)
    except (CancelledError, KeyboardInterrupt):
        sys.stderr.write("\nCancelled.\n")
        return 130
    except OtbtfError as exc:
        where = f"{exc.parameter}: " if exc.parameter else ""
        sys.stderr.write(f"\nERROR ({type(exc).__name__}) {where}{exc.message}\n")
        return 1
    sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
