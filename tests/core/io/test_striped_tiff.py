from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from otbtf_qgis.core.errors import RasterIOError
from otbtf_qgis.core.io import striped_tiff
from otbtf_qgis.core.io.raster import GeoTiffWriter
from otbtf_qgis.core.io.striped_tiff import StripedTiffWriter, supports
from otbtf_qgis.core.io.windows import Window
from otbtf_qgis.core.jobs.outputs import partial_name

gdal.UseExceptions()

DTYPES = [np.uint8, np.uint16, np.int16, np.uint32, np.int32, np.float32, np.float64, np.int64, np.uint64]


def values(rows: int, cols: int, bands: int, dtype: type) -> np.ndarray:
    """Pixels encoding (row, column, band), negative for signed types, fractional for floats."""
    r, c, b = np.meshgrid(np.arange(rows), np.arange(cols), np.arange(bands), indexing="ij")
    encoded = (r * 100 + c * 10 + b).astype(np.float64)
    kind = np.dtype(dtype).kind
    if kind == "i":
        encoded = -encoded
    elif kind == "f":
        encoded = encoded + 0.25
    elif np.dtype(dtype) == np.uint8:
        encoded = encoded % 251
    return encoded.astype(dtype)


def read_back(path: Path) -> tuple[np.ndarray, gdal.Dataset]:
    messages: list[str] = []
    gdal.PushErrorHandler(lambda _cls, _code, message: messages.append(message))
    try:
        dataset = gdal.Open(str(path))
        array = dataset.ReadAsArray(interleave="pixel") if dataset.RasterCount > 1 else dataset.ReadAsArray()[..., None]
    finally:
        gdal.PopErrorHandler()
    assert messages == []  # libtiff finds nothing to complain about
    return array, dataset


@pytest.mark.parametrize("bigtiff", [False, True])
@pytest.mark.parametrize("bands", [1, 3, 4])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_through_gdal(tmp_path: Path, dtype: type, bands: int, bigtiff: bool):
    expected = values(37, 5, bands, dtype)
    path = tmp_path / "patches.tif"
    with StripedTiffWriter(path, 5, 37, bands, dtype, rows_per_strip=8, bigtiff=bigtiff) as writer:
        writer.append(expected[:10])  # appends need not follow strip boundaries
        writer.append(expected[10:11])
        writer.append(expected[11:])
    assert path.read_bytes()[:4] == (b"II+\0" if bigtiff else b"II*\0")
    array, dataset = read_back(path)
    assert array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(array, expected)
    assert (dataset.RasterXSize, dataset.RasterYSize, dataset.RasterCount) == (5, 37, bands)
    assert dataset.GetGeoTransform() == (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert dataset.GetProjection() == ""
    assert dataset.GetRasterBand(1).GetBlockSize() == [5, 8]
    assert dataset.GetRasterBand(1).GetNoDataValue() is None
    structure = dataset.GetMetadata("IMAGE_STRUCTURE")
    assert "COMPRESSION" not in structure
    assert bands == 1 or structure["INTERLEAVE"] == "PIXEL"
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("bands", [1, 2, 4])
def test_same_file_as_gdal_writes(tmp_path: Path, bands: int):
    """gdalinfo sees the same raster as one written by GDAL with the patches-image options."""
    expected = values(24, 6, bands, np.uint16)
    ours, theirs = tmp_path / "ours.tif", tmp_path / "theirs.tif"
    with StripedTiffWriter(ours, 6, 24, bands, np.uint16, rows_per_strip=12) as writer:
        writer.append(expected)
    with GeoTiffWriter(theirs, 6, 24, bands, np.uint16, (0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
                       creation_options=["INTERLEAVE=PIXEL", "BLOCKYSIZE=12"]) as gdal_writer:
        gdal_writer.write(Window(0, 0, 6, 24), expected)
    assert gdal.Info(str(ours)).replace(str(ours), "X") == gdal.Info(str(theirs)).replace(str(theirs), "X")
    np.testing.assert_array_equal(read_back(ours)[0], read_back(theirs)[0])


def test_last_strip_shorter_and_one_strip(tmp_path: Path):
    expected = values(10, 3, 2, np.int32)
    for rows_per_strip, block_rows in ((4, 4), (100, 10)):
        path = tmp_path / f"strips{rows_per_strip}.tif"
        with StripedTiffWriter(path, 3, 10, 2, np.int32, rows_per_strip=rows_per_strip) as writer:
            writer.append(expected)
        array, dataset = read_back(path)
        np.testing.assert_array_equal(array, expected)
        assert dataset.GetRasterBand(1).GetBlockSize() == [3, block_rows]


def test_bigtiff_when_classic_offsets_would_overflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    expected = values(8, 4, 1, np.uint8)
    monkeypatch.setattr(striped_tiff, "CLASSIC_MAX_BYTES", 1500)
    with StripedTiffWriter(tmp_path / "small.tif", 4, 8, 1, np.uint8, rows_per_strip=4) as writer:
        writer.append(expected)
    assert (tmp_path / "small.tif").read_bytes()[:4] == b"II*\0"
    with StripedTiffWriter(tmp_path / "big.tif", 4, 200, 1, np.uint8, rows_per_strip=4) as writer:
        writer.append(np.zeros((200, 4, 1), np.uint8))
    assert (tmp_path / "big.tif").read_bytes()[:4] == b"II+\0"
    assert read_back(tmp_path / "big.tif")[1].RasterYSize == 200


def test_supported_types():
    assert all(supports(dtype) for dtype in DTYPES)
    assert not supports(np.complex64) and not supports(np.int8) and not supports(np.bool_)
    with pytest.raises(ValueError, match="complex64"):
        StripedTiffWriter("unused.tif", 2, 2, 1, np.complex64, rows_per_strip=1)


def test_bad_appends_and_incomplete_files_leave_nothing(tmp_path: Path):
    path = tmp_path / "out.tif"
    writer = StripedTiffWriter(path, 4, 6, 2, np.uint16, rows_per_strip=2)
    with pytest.raises(ValueError, match=r"expected \(n, 4, 2\)"):
        writer.append(np.zeros((2, 4, 3), np.uint16))
    writer.append(np.zeros((5, 4, 2), np.uint16))
    with pytest.raises(ValueError, match="7 rows written to an image of 6"):
        writer.append(np.zeros((2, 4, 2), np.uint16))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    empty = StripedTiffWriter(path, 4, 6, 2, np.uint16, rows_per_strip=2)
    with pytest.raises(RasterIOError, match="got no row"):
        empty.finalize()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="boom"), StripedTiffWriter(path, 4, 6, 2, np.uint16, 2) as failing:
        failing.append(np.zeros((6, 4, 2), np.uint16))
        assert partial_name(path).exists()
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("rows", "rows_per_strip", "strips"), [(7, 3, 3), (6, 3, 2), (2, 3, 1), (1, 8, 1)])
def test_fewer_rows_than_the_maximum(tmp_path: Path, rows: int, rows_per_strip: int, strips: int):
    """The height is a maximum: the image ends at the last row appended, with strips for those rows only."""
    path = tmp_path / "out.tif"
    expected = values(rows, 3, 2, np.int16)
    with StripedTiffWriter(path, 3, 10, 2, np.int16, rows_per_strip=rows_per_strip) as writer:
        writer.append(expected[:1])
        writer.append(expected[1:])
    array, dataset = read_back(path)
    assert (dataset.RasterXSize, dataset.RasterYSize) == (3, rows)
    assert dataset.GetRasterBand(1).GetBlockSize() == [3, min(rows_per_strip, rows)]
    assert int(dataset.GetRasterBand(1).GetMetadataItem("BLOCK_OFFSET_0_" + str(strips - 1), "TIFF")) > 0
    assert dataset.GetRasterBand(1).GetMetadataItem("BLOCK_OFFSET_0_" + str(strips), "TIFF") is None
    np.testing.assert_array_equal(array, expected)
    rows_data = 8 + rows * 3 * 2 * 2
    assert path.stat().st_size < rows_data + 400  # no room left for the rows never written


def test_replaces_an_existing_file(tmp_path: Path):
    path = tmp_path / "out.tif"
    path.write_bytes(b"old")
    with StripedTiffWriter(path, 1, 2, 1, np.float32, rows_per_strip=1) as writer:
        writer.append(np.array([[[1.5]], [[2.5]]], np.float32))
    np.testing.assert_array_equal(read_back(path)[0][:, 0, 0], [1.5, 2.5])
