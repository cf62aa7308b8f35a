"""Raster I/O on GDAL: open with clear errors, read windows, write tiled GeoTIFFs atomically.

Arrays are ``(rows, cols, bands)`` ("pixel interleaved"), the layout TensorFlow uses.
Windows (see :mod:`otbtf_qgis.core.io.windows`) may reach outside the image: the part
outside is filled with a value. Outputs are written to a hidden temporary name beside
the destination and renamed only when complete, so a failed or cancelled run leaves no
half-written file (see :func:`otbtf_qgis.core.jobs.outputs.partial_name`).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from osgeo import gdal, osr

from otbtf_qgis.core.errors import InputError, RasterIOError
from otbtf_qgis.core.io.windows import Window, clip, padding
from otbtf_qgis.core.jobs.outputs import PublishOnSuccess, ensure_writable_parent, partial_name, remove_path

gdal.UseExceptions()
osr.UseExceptions()

GeoTransform = tuple[float, float, float, float, float, float]

#: Fast default creation options: on 2 cores, LZW costs ~17x the CPU of ZSTD level 1
#: when writing float32 tiles and competes with TensorFlow for the CPU.
DEFAULT_CREATION_OPTIONS: tuple[str, ...] = (
    "TILED=YES",
    "BLOCKXSIZE=256",
    "BLOCKYSIZE=256",
    "COMPRESS=ZSTD",
    "ZSTD_LEVEL=1",
    "BIGTIFF=IF_SAFER",
)

def open_raster(path: str | os.PathLike[str], parameter: str = "INPUT",
                open_options: Sequence[str] = ()) -> gdal.Dataset:
    """Open a raster read-only with a clear error.

    Args:
        path: The raster.
        parameter: The user-facing parameter named in errors.
        open_options: GDAL open options of the driver (``NAME=VALUE``).

    Raises:
        RasterIOError: the file does not exist, is not a raster GDAL can read, or has no band.
    """
    text = os.fspath(path)
    if not text:
        raise InputError("no raster given. Choose a raster file.", parameter)
    is_virtual = text.startswith("/vsi") or text.upper().startswith(("NETCDF:", "HDF5:", "GTIFF_DIR:"))
    if not is_virtual and not os.path.exists(text):
        raise RasterIOError(f"the raster '{text}' does not exist. Check the path.", parameter)
    if not is_virtual and os.path.isdir(text) and not text.endswith((".gdb", ".SAFE", ".zarr")):
        raise RasterIOError(f"'{text}' is a folder, not a raster file. Choose a raster file.", parameter)
    try:
        dataset = gdal.OpenEx(text, gdal.OF_RASTER | gdal.OF_READONLY, open_options=list(open_options))
    except RuntimeError as exc:
        raise RasterIOError(f"'{text}' is not a raster GDAL can read ({exc}). "
                            "Give a GeoTIFF or another GDAL raster format.", parameter) from exc
    if dataset is None:
        raise RasterIOError(f"'{text}' is not a raster GDAL can read. Give a GeoTIFF or another GDAL raster format.",
                            parameter)
    if dataset.RasterCount == 0:
        raise RasterIOError(f"'{text}' has no raster band (is it a vector file?). Give a raster.", parameter)
    return dataset


@dataclass(frozen=True)
class RasterInfo:
    """What the workflow needs to know about a raster, read once.

    Attributes:
        path: The file (as given).
        width: Columns.
        height: Rows.
        bands: Band count.
        dtype: numpy dtype name of band 1 (e.g. ``"uint16"``).
        geotransform: GDAL geotransform ``(x0, dx, rx, y0, ry, dy)``.
        crs_wkt: The CRS as WKT (empty if none).
        nodata: The nodata value of each band, ``None`` where unset.
        block_size: ``(block_width, block_height)`` of band 1.
    """

    path: str
    width: int
    height: int
    bands: int
    dtype: str
    geotransform: GeoTransform
    crs_wkt: str
    nodata: tuple[float | None, ...]
    block_size: tuple[int, int]

    @classmethod
    def from_dataset(cls, dataset: gdal.Dataset, path: str | os.PathLike[str] = "") -> RasterInfo:
        """Read the description of an open dataset."""
        band1 = dataset.GetRasterBand(1)
        return cls(
            path=os.fspath(path) or dataset.GetDescription(),
            width=dataset.RasterXSize,
            height=dataset.RasterYSize,
            bands=dataset.RasterCount,
            dtype=np.dtype(gdal_array_type(band1.DataType)).name,
            geotransform=tuple(float(v) for v in dataset.GetGeoTransform()),  # type: ignore[arg-type]
            crs_wkt=dataset.GetProjection() or "",
            nodata=tuple(dataset.GetRasterBand(i + 1).GetNoDataValue() for i in range(dataset.RasterCount)),
            block_size=tuple(band1.GetBlockSize()),  # type: ignore[arg-type]
        )

    @property
    def common_nodata(self) -> float | None:
        """The nodata value when every band that sets one agrees, else that of band 1."""
        values = {v for v in self.nodata if v is not None}
        if len(values) == 1:
            return values.pop()
        return self.nodata[0] if self.nodata else None

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of a north-up raster."""
        x0, dx, _, y0, _, dy = self.geotransform
        xs = (x0, x0 + dx * self.width)
        ys = (y0, y0 + dy * self.height)
        return (min(xs), min(ys), max(xs), max(ys))


def raster_info(path: str | os.PathLike[str], parameter: str = "INPUT") -> RasterInfo:
    """Open ``path`` and describe it (see :class:`RasterInfo`)."""
    dataset = open_raster(path, parameter)
    try:
        return RasterInfo.from_dataset(dataset, path)
    finally:
        dataset = None


def gdal_array_type(gdal_type: int) -> np.dtype[Any]:
    """Return the numpy dtype of a GDAL data type code."""
    from osgeo import gdal_array

    code = gdal_array.GDALTypeCodeToNumericTypeCode(gdal_type)
    if code is None:
        raise RasterIOError(f"unsupported GDAL data type {gdal.GetDataTypeName(gdal_type)}")
    return np.dtype(code)


def numpy_to_gdal_type(dtype: Any) -> int:
    """GDAL data type code for a numpy dtype (``bool`` maps to Byte)."""
    from osgeo import gdal_array

    dt = np.dtype(dtype)
    if dt == np.bool_:
        return int(gdal.GDT_Byte)
    if dt == np.int8:
        return int(gdal.GDT_Int16)  # GDAL 3.6 has no Int8
    code = gdal_array.NumericTypeCodeToGDALTypeCode(dt)
    if code is None:
        raise InputError(f"data type '{dt.name}' cannot be written to GeoTIFF. "
                         "Use uint8, int16, uint16, int32, uint32, float32 or float64.", "OUTPUT_TYPE")
    return int(code)


def window_geotransform(geotransform: Sequence[float], window: Window) -> GeoTransform:
    """Geotransform of the grid whose pixel (0, 0) is pixel ``window.col_off, window.row_off``.

    ``x0' = x0 + col*dx + row*rx`` and ``y0' = y0 + col*ry + row*dy``.
    """
    x0, dx, rx, y0, ry, dy = (float(v) for v in geotransform)
    return (x0 + window.col_off * dx + window.row_off * rx, dx, rx,
            y0 + window.col_off * ry + window.row_off * dy, ry, dy)


def read_window(dataset: gdal.Dataset, window: Window, bands: Sequence[int] | None = None,
                fill_value: float = 0, dtype: Any = None, out: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
    """Read ``window`` of ``dataset`` into a ``(height, width, bands)`` array.

    Pixels of the window outside the image get ``fill_value``.

    Args:
        dataset: An open GDAL dataset.
        window: Pixel window, possibly reaching outside the image.
        bands: 1-based band numbers (default: all).
        fill_value: Value of pixels outside the image.
        dtype: Output dtype (default: the raster's).
        out: Optional preallocated array of shape ``(height, width, len(bands))``.

    Raises:
        RasterIOError: when GDAL fails to read (corrupt file, I/O error).
    """
    band_list = list(bands) if bands is not None else list(range(1, dataset.RasterCount + 1))
    if dtype is None:
        dtype = gdal_array_type(dataset.GetRasterBand(band_list[0]).DataType)
    shape = (window.height, window.width, len(band_list))
    if out is None:
        out = np.empty(shape, dtype=dtype)
    elif out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    inside = clip(window, dataset.RasterXSize, dataset.RasterYSize)
    if inside is None:
        out[...] = fill_value
        return out
    left, top, right, bottom = padding(window, dataset.RasterXSize, dataset.RasterYSize)
    if (left, top, right, bottom) != (0, 0, 0, 0):
        out[...] = fill_value
    target = out[top:top + inside.height, left:left + inside.width, :]
    try:
        if len(band_list) == 1:
            band = dataset.GetRasterBand(band_list[0])
            plane = target[:, :, 0]
            if plane.flags.c_contiguous:
                band.ReadAsArray(inside.col_off, inside.row_off, inside.width, inside.height, buf_obj=plane)
            else:
                plane[...] = band.ReadAsArray(inside.col_off, inside.row_off, inside.width, inside.height)
        elif target.flags.c_contiguous:
            dataset.ReadAsArray(inside.col_off, inside.row_off, inside.width, inside.height,
                                buf_obj=target, interleave="pixel", band_list=band_list)
        else:
            target[...] = dataset.ReadAsArray(inside.col_off, inside.row_off, inside.width, inside.height,
                                              interleave="pixel", band_list=band_list)
    except RuntimeError as exc:
        raise RasterIOError(f"cannot read {inside} of '{dataset.GetDescription()}': {exc}") from exc
    return out


def nodata_mask(pixels: npt.NDArray[Any], nodata: Sequence[float | None]) -> npt.NDArray[np.bool_]:
    """Where ``pixels`` (``(..., bands)``) are nodata: True where any band equals that band's nodata value.

    Args:
        pixels: The pixels, bands last.
        nodata: One value per band: a number, NaN (matches NaN pixels, which never compare
            equal to anything), or ``None`` (the band is not checked).

    Returns:
        A boolean array of shape ``pixels.shape[:-1]``.
    """
    if len(nodata) != pixels.shape[-1]:
        raise ValueError(f"{len(nodata)} nodata values for {pixels.shape[-1]} bands")
    mask = np.zeros(pixels.shape[:-1], dtype=bool)
    for band, value in enumerate(nodata):
        if value is None:
            continue
        plane = pixels[..., band]
        mask |= np.isnan(plane) if math.isnan(value) else plane == value
    return mask




class GeoTiffWriter(PublishOnSuccess):
    """A tiled, compressed GeoTIFF written window by window and published atomically.

    Use as a context manager: the file is created under a temporary name; leaving the
    block normally renames it to ``path`` (replacing an older file), an exception
    deletes it. Call :meth:`write` with ``(rows, cols, bands)`` arrays.

    Args:
        path: Destination file.
        width: Columns.
        height: Rows.
        bands: Band count.
        dtype: numpy dtype of the pixels.
        geotransform: GDAL geotransform of the output grid.
        crs_wkt: CRS as WKT ("" for none).
        nodata: Nodata value for every band (``None`` for none).
        creation_options: GDAL GTiff creation options (default: :data:`DEFAULT_CREATION_OPTIONS`).
        band_descriptions: Optional description per band.
        cog: Convert to a Cloud Optimized GeoTIFF (with overviews) when finalizing.
        parameter: Parameter name used in error messages.
    """

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, bands: int, dtype: Any,
                 geotransform: Sequence[float], crs_wkt: str = "", nodata: float | None = None,
                 creation_options: Sequence[str] | None = None, band_descriptions: Sequence[str] | None = None,
                 cog: bool = False, parameter: str = "OUTPUT") -> None:
        if width <= 0 or height <= 0 or bands <= 0:
            raise InputError(f"cannot create an empty raster ({width}x{height}, {bands} bands). "
                             "Check the input sizes.", parameter)
        self.path = Path(path)
        self.parameter = parameter
        self.width, self.height, self.bands = width, height, bands
        self.dtype = np.dtype(dtype)
        self.cog = cog
        self.options = list(creation_options if creation_options is not None else DEFAULT_CREATION_OPTIONS)
        ensure_writable_parent(self.path, parameter)
        self.temp = partial_name(self.path)
        remove_path(self.temp)
        driver = gdal.GetDriverByName("GTiff")
        try:
            self.dataset: gdal.Dataset | None = driver.Create(
                str(self.temp), width, height, bands, numpy_to_gdal_type(self.dtype), self.options)
        except RuntimeError as exc:
            remove_path(self.temp)
            raise RasterIOError(f"cannot create '{self.path}': {exc}. Check the folder, the free space and "
                                "the creation options.", parameter) from exc
        assert self.dataset is not None
        self._palette: list[tuple[tuple[int, ...], str]] = []
        self.dataset.SetGeoTransform(list(geotransform))
        if crs_wkt:
            self.dataset.SetProjection(crs_wkt)
        for index in range(bands):
            band = self.dataset.GetRasterBand(index + 1)
            if nodata is not None:
                band.SetNoDataValue(float(nodata))
            if band_descriptions and index < len(band_descriptions):
                band.SetDescription(str(band_descriptions[index]))

    def write(self, window: Window, array: npt.NDArray[Any]) -> None:
        """Write a ``(rows, cols, bands)`` (or ``(rows, cols)`` for one band) array at ``window``.

        Raises:
            RasterIOError: on an I/O failure (e.g. disk full).
        """
        if self.dataset is None:
            raise RasterIOError("the writer is closed", self.parameter)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.shape != (window.height, window.width, self.bands):
            raise ValueError(f"array shape {array.shape} does not match {window} with {self.bands} bands")
        if array.dtype != self.dtype:
            array = array.astype(self.dtype)
        try:
            if self.bands == 1:  # GDAL 3.6's pixel-interleaved WriteArray fails on one band
                self.dataset.GetRasterBand(1).WriteArray(array[:, :, 0], window.col_off, window.row_off)
            else:
                self.dataset.WriteArray(np.ascontiguousarray(array), window.col_off, window.row_off,
                                        interleave="pixel")
        except RuntimeError as exc:
            raise RasterIOError(f"writing '{self.path}' failed at {window}: {exc}. "
                                "Check the free disk space.", self.parameter) from exc

    def set_metadata(self, metadata: dict[str, str]) -> None:
        """Set dataset-level metadata items."""
        if self.dataset is not None:
            self.dataset.SetMetadata({str(k): str(v) for k, v in metadata.items()})

    def set_scale(self, scale: float, offset: float = 0.0) -> None:
        """Give every band a scale and offset: readers take ``stored × scale + offset`` as the value."""
        if self.dataset is None:
            return
        for index in range(self.bands):
            band = self.dataset.GetRasterBand(index + 1)
            band.SetScale(float(scale))
            band.SetOffset(float(offset))

    def set_color_table(self, colors: Sequence[tuple[int, int, int]], names: Sequence[str] | None = None) -> None:
        """Give band 1 a palette (and category names), for class maps."""
        if self.dataset is None:
            return
        table = gdal.ColorTable()
        for index, (r, g, b) in enumerate(colors):
            table.SetColorEntry(index, (int(r), int(g), int(b), 255))
        band = self.dataset.GetRasterBand(1)
        band.SetRasterColorTable(table)
        band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
        if names:
            band.SetRasterCategoryNames(list(names))
        self._palette = [(tuple(int(v) for v in color), str(names[i]) if names and i < len(names) else str(i))
                         for i, color in enumerate(colors)]

    def complete(self) -> None:
        """Flush and close the file (converted to a COG if asked), still under its temporary name.

        Raises:
            RasterIOError: when flushing fails (e.g. disk full); the temporary file is removed.
        """
        if self.dataset is None:
            return
        try:
            self.dataset.FlushCache()
            self.dataset = None  # closes the file
            if self.cog:
                self._convert_to_cog()
        except RuntimeError as exc:
            self.abort()
            raise RasterIOError(f"finishing '{self.path}' failed: {exc}. Check the free disk space.",
                                self.parameter) from exc

    def finalize(self) -> Path:
        """Complete the file and publish it under its final name; return that path.

        Raises:
            RasterIOError: when flushing fails (e.g. disk full); nothing is published.
        """
        self.complete()
        if not self.temp.exists():  # published already, or aborted
            return self.path
        for sidecar in (self.path.with_name(self.path.name + ".aux.xml"),):
            with contextlib.suppress(FileNotFoundError):
                sidecar.unlink()
        temp_aux = self.temp.with_name(self.temp.name + ".aux.xml")
        os.replace(self.temp, self.path)
        if temp_aux.exists():
            os.replace(temp_aux, self.path.with_name(self.path.name + ".aux.xml"))
        if self._palette:
            write_paletted_style(self.path.with_suffix(".qml"), self._palette)
        return self.path

    def _convert_to_cog(self) -> None:
        cog_temp = self.temp.with_name(self.temp.name + ".cog.tif")
        try:
            kept = {"COMPRESS", "LEVEL", "BIGTIFF", "NUM_THREADS"}
            options = [o for o in self.options if o.split("=")[0].upper() in kept]
            gdal.Translate(str(cog_temp), str(self.temp), format="COG",
                           creationOptions=[*options, "BLOCKSIZE=512", "OVERVIEWS=AUTO"])
            os.replace(cog_temp, self.temp)
        finally:
            remove_path(cog_temp)

    def abort(self) -> None:
        """Close and delete the temporary file; nothing is published."""
        self.dataset = None
        remove_path(self.temp)
        remove_path(self.temp.with_name(self.temp.name + ".aux.xml"))



def publish_together(writers: Sequence[GeoTiffWriter]) -> list[Path]:
    """Publish the files of ``writers`` together: all of them, or none.

    Every file is completed (flushed, converted to a COG) before the first one is renamed
    over a previous output, so a failing flush leaves the previous outputs as they were.
    On a failure while renaming, the files already published are removed and the other
    writers aborted, then the error is raised again.
    """
    published: list[Path] = []
    try:
        for writer in writers:  # everything that can fail (flush, COG) before any file replaces an old one
            writer.complete()
        for writer in writers:
            published.append(writer.finalize())
    except BaseException:
        for writer in writers:
            writer.abort()
        for path in published:
            remove_path(path)
        raise
    return published


def write_paletted_style(path: Path, entries: Sequence[tuple[tuple[int, ...], str]]) -> Path:
    """Write a QGIS layer style (``.qml``) beside a class map: a paletted renderer with the class names.

    QGIS loads ``<raster name>.qml`` as the default style of the raster, so the class map
    opens with its colours and names in the legend. (GDAL keeps category names only in
    the ``.aux.xml`` side file, which some readers ignore.)
    """
    from xml.sax.saxutils import quoteattr

    rows = "\n".join(
        f'        <paletteEntry value="{index}" color="#{r:02x}{g:02x}{b:02x}" alpha="255" label={quoteattr(label)}/>'
        for index, ((r, g, b, *_), label) in enumerate(entries))
    text = ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.22" styleCategories="Symbology">\n  <pipe>\n'
            '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">\n'
            "      <rasterTransparency/>\n      <colorPalette>\n"
            f"{rows}\n      </colorPalette>\n    </rasterrenderer>\n  </pipe>\n</qgis>\n")
    temp = partial_name(path)
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)
    return path


def srs_from_wkt(wkt: str) -> osr.SpatialReference | None:
    """An ``osr.SpatialReference`` with traditional GIS axis order, or ``None`` for an empty WKT."""
    if not wkt:
        return None
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def same_crs(wkt_a: str, wkt_b: str) -> bool:
    """True when two WKT strings describe the same CRS (or both are empty)."""
    a, b = srs_from_wkt(wkt_a), srs_from_wkt(wkt_b)
    if a is None or b is None:
        return a is None and b is None
    return bool(a.IsSame(b))
