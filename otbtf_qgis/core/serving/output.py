"""What serving writes: output creation options, pixel types, class map palettes, region mosaics.

Outputs are tiled GeoTIFFs compressed with ZSTD level 1 by default (on 2 cores LZW costs
about 17 times its CPU and competes with TensorFlow); the user's creation options replace
the defaults key by key. The class map is paletted, with conventional colours for common
land-cover names. Region files of one output grid mosaic through a VRT.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from osgeo import gdal

from otbtf_qgis.core.errors import InputError, RasterIOError
from otbtf_qgis.core.io.raster import DEFAULT_CREATION_OPTIONS
from otbtf_qgis.core.jobs.configs.modelserve import SCALED_TYPES

#: GDAL block cache while serving (bytes), unless the user set GDAL_CACHEMAX.
GDAL_CACHE_BYTES = 64 << 20
#: Default class map palette (qualitative colours, then repeated).
CLASS_PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
    (219, 219, 141), (158, 218, 229),
)
#: Conventional colours of common land-cover class names (matched on the lower-cased name).
NAMED_CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "water": (30, 90, 200), "sea": (30, 90, 200), "river": (30, 90, 200), "lake": (30, 90, 200),
    "tree": (20, 110, 40), "trees": (20, 110, 40), "forest": (20, 110, 40), "wood": (20, 110, 40),
    "crop": (235, 200, 60), "crops": (235, 200, 60), "cropland": (235, 200, 60), "agriculture": (235, 200, 60),
    "grass": (140, 200, 90), "grassland": (140, 200, 90), "meadow": (140, 200, 90),
    "developed": (200, 40, 40), "urban": (200, 40, 40), "built": (200, 40, 40), "building": (200, 40, 40),
    "bare": (170, 140, 100), "soil": (170, 140, 100), "sand": (230, 210, 160),
    "cloud": (240, 240, 240), "snow": (250, 250, 255), "shadow": (60, 60, 60),
}


def class_palette(names: Sequence[str], count: int) -> list[tuple[int, int, int]]:
    """Colours of ``count`` classes: conventional ones for known names, the qualitative palette otherwise."""
    colors = []
    for index in range(count):
        name = names[index].strip().lower() if index < len(names) else ""
        colors.append(NAMED_CLASS_COLORS.get(name, CLASS_PALETTE[index % len(CLASS_PALETTE)]))
    return colors


def class_map_dtype(classes: int) -> type[np.unsignedinteger[Any]]:
    """Type of a class map of ``classes`` classes: uint8 below 255 (255 is its nodata), else uint16."""
    return np.uint8 if classes < 255 else np.uint16


def band_descriptions(output_names: Sequence[str], output_bands: Sequence[int],
                      class_names: Sequence[str]) -> list[str]:
    """One description per output band: the output's name, with the class name (or index) of multi-band outputs."""
    descriptions = []
    for name, count in zip(output_names, output_bands, strict=True):
        if count == 1:
            descriptions.append(name)
        elif len(class_names) == count:
            descriptions.extend(f"{name}: {class_name}" for class_name in class_names)
        else:
            descriptions.extend(f"{name}: {k}" for k in range(count))
    return descriptions


def class_legend(class_names: Sequence[str], class_colors: Sequence[Sequence[int]],
                 classes: int) -> tuple[list[str], list[tuple[int, int, int]]]:
    """Names and colours of the ``classes`` classes of a class map: the model's when complete, else defaults."""
    names = list(class_names) if len(class_names) == classes else [f"class {k}" for k in range(classes)]
    colors = ([(int(c[0]), int(c[1]), int(c[2])) for c in class_colors[:classes]] if len(class_colors) >= classes
              else class_palette(names, classes))
    return names, colors


def cast_output(data: npt.NDArray[Any], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """Cast model values to the output type: integers are rounded and clamped to the type's range."""
    if data.dtype == dtype:
        return data
    if dtype.kind in "iu" and data.dtype.kind == "f":
        limits = np.iinfo(dtype)
        rounded: npt.NDArray[Any] = np.clip(np.rint(data), limits.min, limits.max)
        return rounded.astype(dtype)
    return data.astype(dtype)


def stored_type(output_type: str) -> np.dtype[Any]:
    """The pixel type written for ``output_type`` (``scaled_uint8`` is stored as uint8)."""
    return np.dtype(SCALED_TYPES[output_type][0] if output_type in SCALED_TYPES else output_type)


def output_nodata(output_type: str, background: float) -> float:
    """The nodata of an output of ``output_type``: BACKGROUND, or the reserved value of a scaled type."""
    return float(SCALED_TYPES[output_type][2]) if output_type in SCALED_TYPES else background


def output_scale(output_type: str) -> float | None:
    """The band scale readers apply to a scaled type (``1 / factor``), ``None`` for the other types."""
    return 1.0 / SCALED_TYPES[output_type][1] if output_type in SCALED_TYPES else None


def to_output_type(data: npt.NDArray[Any], output_type: str) -> npt.NDArray[Any]:
    """Model values as written for ``output_type``.

    A scaled type stores ``round(value × factor)`` clipped to ``[0, nodata − 1]``, so a
    value in [0, 1] reads back (× the band scale) within half a step (1/500 for
    ``scaled_uint8``, 1/20000 for ``scaled_uint16``) and no value is taken for nodata.
    Other types go through :func:`cast_output`.
    """
    if output_type not in SCALED_TYPES:
        return cast_output(data, np.dtype(output_type))
    stored, factor, nodata = SCALED_TYPES[output_type]
    # In place on one float32 copy: the writer thread shares the cores with the model.
    scaled: npt.NDArray[Any] = np.multiply(data, np.float32(factor), dtype=np.float32)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, nodata - 1, out=scaled)
    return scaled.astype(stored)


def merged_creation_options(user_options: Sequence[str]) -> list[str]:
    """The default creation options with the user's replacing them key by key.

    ``ZSTD_LEVEL`` is dropped when the user picks another codec, and the block size
    when the output is not tiled.
    """
    merged: dict[str, str] = {}
    for option in (*DEFAULT_CREATION_OPTIONS, *user_options):
        key, _, value = option.partition("=")
        merged[key.strip().upper()] = value.strip()
    if merged.get("COMPRESS", "").upper() != "ZSTD":
        merged.pop("ZSTD_LEVEL", None)
    if merged.get("TILED", "NO").upper() not in {"YES", "TRUE", "ON", "1"}:
        merged.pop("BLOCKXSIZE", None)
        merged.pop("BLOCKYSIZE", None)
    return [f"{key}={value}" for key, value in merged.items()]


def block_size(options: Sequence[str]) -> tuple[int, int]:
    """The ``(x, y)`` block size the creation options give (``(1, 1)`` when not tiled).

    Raises:
        InputError: BLOCKXSIZE/BLOCKYSIZE are not integers.
    """
    values = dict(option.partition("=")[::2] for option in options)
    if values.get("TILED", "NO").upper() not in {"YES", "TRUE", "ON", "1"}:
        return (1, 1)
    try:
        return (int(values.get("BLOCKXSIZE", 256)), int(values.get("BLOCKYSIZE", 256)))
    except ValueError as exc:
        raise InputError(f"BLOCKXSIZE/BLOCKYSIZE must be integers, got {values}.", "CREATION_OPTIONS") from exc


@contextlib.contextmanager
def gdal_cache_limit() -> Iterator[None]:
    """Cap GDAL's block cache while serving, unless the user set ``GDAL_CACHEMAX``.

    Every input pixel is read about once: an uncapped cache (5 % of the RAM by default)
    would only make memory grow with the image.
    """
    previous = gdal.GetCacheMax()
    user_set = bool(os.environ.get("GDAL_CACHEMAX") or gdal.GetConfigOption("GDAL_CACHEMAX"))
    if not user_set and previous > GDAL_CACHE_BYTES:
        gdal.SetCacheMax(GDAL_CACHE_BYTES)
    try:
        yield
    finally:
        if not user_set and previous > GDAL_CACHE_BYTES:
            gdal.SetCacheMax(previous)


def write_mosaic_vrt(paths: Sequence[str | os.PathLike[str]], vrt_path: str | os.PathLike[str]) -> Path:
    """Mosaic region files (same grid, disjoint regions) into one VRT.

    Raises:
        RasterIOError: when GDAL cannot build the VRT.
    """
    if not paths:
        raise InputError("no region file to mosaic.", "INPUT")
    try:
        dataset = gdal.BuildVRT(os.fspath(vrt_path), [os.fspath(p) for p in paths])
    except RuntimeError as exc:
        raise RasterIOError(f"cannot build the mosaic '{vrt_path}': {exc}", "OUTPUT") from exc
    if dataset is None:
        raise RasterIOError(f"cannot build the mosaic '{vrt_path}'.", "OUTPUT")
    dataset.FlushCache()
    dataset = None
    return Path(vrt_path)
