"""The class map under assessment: its codes, names, nodata, pixel area, and its strips.

A class map is a single-band integer raster whose pixel values are class codes (the
``OUTPUT_CLASSES`` of ``otbtf:modelserve``: uint8 or uint16, paletted, nodata 255). The
name of code ``k`` is entry ``k`` of band 1's GDAL category names, or of ``CLASS_NAMES``
when given (it replaces the map's own names, e.g. the ``class 0``, ``class 1`` … that
serving writes when the model has no class names). The map is read by strips of whole
rows, never whole.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from osgeo import gdal

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.io.raster import RasterInfo, open_raster, srs_from_wkt
from otbtf_qgis.core.io.windows import Window

#: Rough memory budget of one strip: the map's pixels and the reference burnt on them.
STRIP_BYTES = 32 << 20
#: Integer pixel types a class map may have.
INTEGER_TYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64")


def category_names(band: gdal.Band) -> list[str]:
    """The GDAL category names of a band (``[]`` when it has none).

    GeoTIFF keeps them in the ``.aux.xml`` side file, which GDAL 3.6 loads only when some
    other metadata is asked for first: ``GetRasterCategoryNames`` alone answers ``None``
    on a freshly opened file. Asking for the band's metadata loads it.
    """
    band.GetMetadata()
    names = band.GetRasterCategoryNames()
    return [str(name) for name in names] if names else []


def name_key(name: str) -> str:
    """How class names are compared: stripped, case-insensitive (``" Water "`` matches ``"water"``)."""
    return str(name).strip().casefold()


@dataclass(frozen=True)
class ClassMap:
    """What the assessment needs to know about the class map, read once.

    Attributes:
        info: The raster's description.
        nodata: The map's nodata value (``NODATA``, else the band's), ``None`` for none.
        names: Code → class name, from ``CLASS_NAMES`` or the category names (empty names skipped).
        names_source: Where the names come from: ``"CLASS_NAMES"``, ``"category names"`` or ``""``.
        pixel_area: The area of one pixel in the CRS's units² (``|dx·dy − rx·ry|``).
        area_unit: ``"m²"`` for a metric CRS, else ``"map units²"``.
        metric: Whether the CRS's linear unit is the metre (areas are then also given in hectares).
    """

    info: RasterInfo
    nodata: float | None
    names: dict[int, str]
    names_source: str
    pixel_area: float
    area_unit: str
    metric: bool

    def name(self, code: int) -> str:
        """The name of ``code`` (its number when it has none)."""
        return self.names.get(code, str(code))

    def code_of_name(self) -> dict[str, int]:
        """Compared name (see :func:`name_key`) → code; the first code wins when two codes share a name."""
        result: dict[str, int] = {}
        for code in sorted(self.names):
            result.setdefault(name_key(self.names[code]), code)
        return result


def _area_unit(crs_wkt: str) -> tuple[str, bool]:
    srs = srs_from_wkt(crs_wkt)
    if srs is not None and srs.IsProjected() and abs(srs.GetLinearUnits() - 1.0) < 1e-12:
        return "m²", True
    if srs is not None and srs.IsGeographic():
        return "square degrees", False
    return "map units²", False


def open_class_map(path: str | os.PathLike[str], nodata: float | None = None,
                   class_names: Sequence[str] = ()) -> tuple[gdal.Dataset, ClassMap]:
    """Open the class map and describe it (keep the dataset to read strips).

    Args:
        path: The class map.
        nodata: Its nodata value (``None``: the band's own).
        class_names: Names of the codes 0, 1, 2 …, replacing the map's own (empty: the map's).

    Raises:
        InputError: the map is not a single-band integer raster (parameter ``INPUT``), or
            ``CLASS_NAMES`` repeats a name.
        RasterIOError: it cannot be opened.
    """
    dataset = open_raster(path, "INPUT")
    info = RasterInfo.from_dataset(dataset, path)
    if info.bands != 1 or info.dtype not in INTEGER_TYPES:
        what = f"{info.bands} bands" if info.bands != 1 else f"pixels of type {info.dtype}"
        raise InputError(f"'{os.fspath(path)}' has {what}: a class map is a single-band integer raster whose pixel "
                         "values are class codes (e.g. the class map of Model serve, OUTPUT_CLASSES). Give such a "
                         "raster, or convert it first (gdal_translate -b 1 -ot UInt16).", "INPUT")
    band = dataset.GetRasterBand(1)
    value = nodata if nodata is not None else band.GetNoDataValue()
    if value is not None and math.isnan(value):
        value = None  # an integer band holds no NaN
    if class_names:
        keys = [name_key(n) for n in class_names]
        repeated = sorted({n for n, k in zip(class_names, keys, strict=True) if keys.count(k) > 1})
        if repeated:
            raise InputError(f"class names {', '.join(repeated)} are given twice (names are compared without case). "
                             "Give each class once, in the order of the codes 0, 1, 2…", "CLASS_NAMES")
        names, source = list(class_names), "CLASS_NAMES"
    else:
        names = category_names(band)
        source = "category names" if any(n.strip() for n in names) else ""
    named = {code: name.strip() for code, name in enumerate(names) if name.strip()}
    if value is not None and float(value).is_integer():
        named.pop(int(value), None)  # nodata is no class, whatever its name
    _, dx, rx, _, ry, dy = info.geotransform
    unit, metric = _area_unit(info.crs_wkt)
    return dataset, ClassMap(info, value, named, source, abs(dx * dy - rx * ry), unit, metric)


def strip_rows(info: RasterInfo, bytes_per_pixel: int, budget: int = STRIP_BYTES) -> int:
    """Rows per strip: as many as fit in ``budget`` bytes, a multiple of the block height when possible."""
    rows = max(1, budget // max(1, info.width * bytes_per_pixel))
    block = max(1, info.block_size[1])
    if rows >= block:
        rows -= rows % block
    return min(rows, info.height)


def strips(info: RasterInfo, rows: int) -> Iterator[Window]:
    """Windows of ``rows`` whole rows covering the map, top to bottom (the last one may be shorter)."""
    for row in range(0, info.height, rows):
        yield Window(0, row, info.width, min(rows, info.height - row))


def count_codes(values: np.ndarray[Any, Any], valid: np.ndarray[Any, Any] | None, counts: dict[int, int]) -> None:
    """Add the number of pixels of each code of ``values`` (where ``valid``) to ``counts``."""
    selected = values if valid is None else values[valid]
    if selected.size == 0:
        return
    if selected.dtype in (np.uint8, np.uint16):
        histogram = np.bincount(selected.ravel(), minlength=1)
        for code in np.flatnonzero(histogram).tolist():
            counts[code] = counts.get(code, 0) + int(histogram[code])
        return
    codes, numbers = np.unique(selected, return_counts=True)
    for code, number in zip(codes.tolist(), numbers.tolist(), strict=True):
        counts[int(code)] = counts.get(int(code), 0) + int(number)
