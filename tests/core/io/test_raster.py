from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from otbtf_qgis.core.errors import InputError, RasterIOError
from otbtf_qgis.core.io.raster import (
    GeoTiffWriter,
    RasterInfo,
    nodata_mask,
    open_raster,
    publish_together,
    raster_info,
    read_window,
    same_crs,
    window_geotransform,
)
from otbtf_qgis.core.io.windows import Window, tile_grid
from otbtf_qgis.core.jobs.outputs import partial_name
from tests.core.conftest import UTM31, encoded_values


def test_info_reads_size_geotransform_crs_nodata(raster_factory):
    path = raster_factory(encoded_values(20, 30, 3, "uint16"), nodata=7)
    info = raster_info(path)
    assert (info.width, info.height, info.bands, info.dtype) == (30, 20, 3, "uint16")
    assert info.geotransform == (500000.0, 10.0, 0.0, 4500000.0, 0.0, -10.0)
    assert same_crs(info.crs_wkt, UTM31)
    assert info.nodata == (7.0, 7.0, 7.0) and info.common_nodata == 7.0
    assert info.block_size == (16, 16)
    assert info.extent == (500000.0, 4499800.0, 500300.0, 4500000.0)


@pytest.mark.parametrize("window", [Window(0, 0, 30, 20), Window(5, 3, 7, 4), Window(25, 15, 5, 5)])
def test_read_window_inside_returns_exact_values(raster_factory, window):
    data = encoded_values(20, 30, 3, "uint16")
    with_ds = open_raster(raster_factory(data))
    got = read_window(with_ds, window)
    assert got.shape == (window.height, window.width, 3)
    np.testing.assert_array_equal(got, data[window.slices()])


def test_read_window_outside_is_filled(raster_factory):
    data = encoded_values(10, 12, 2, "float32")
    ds = open_raster(raster_factory(data))
    got = read_window(ds, Window(-2, -3, 6, 5), fill_value=-1)
    assert got.shape == (5, 6, 2)
    assert (got[:3] == -1).all() and (got[:, :2] == -1).all()
    np.testing.assert_array_equal(got[3:, 2:], data[0:2, 0:4])
    far = read_window(ds, Window(50, 50, 3, 3), fill_value=9)
    assert (far == 9).all()
    right = read_window(ds, Window(10, 8, 4, 4), bands=[2], fill_value=0)
    np.testing.assert_array_equal(right[:2, :2, 0], data[8:10, 10:12, 1])
    assert (right[2:] == 0).all() and (right[:, 2:] == 0).all()


def test_read_window_into_preallocated_array(raster_factory):
    data = encoded_values(8, 8, 2, "int16")
    ds = open_raster(raster_factory(data))
    out = np.zeros((4, 4, 2), np.float32)
    result = read_window(ds, Window(2, 2, 4, 4), out=out)
    assert result is out
    np.testing.assert_array_equal(out, data[2:6, 2:6].astype(np.float32))


def test_nodata_mask_per_band_and_nan_aware():
    pixels = np.array([[[1.0, 2.0, np.nan], [5.0, np.nan, 3.0]],
                       [[0.0, 0.0, 0.0], [np.nan, 7.0, 7.0]]], np.float32)  # (2, 2, 3)
    np.testing.assert_array_equal(nodata_mask(pixels, [5.0, None, 7.0]), [[False, True], [False, True]])
    np.testing.assert_array_equal(nodata_mask(pixels, [float("nan"), None, None]), [[False, False], [False, True]])
    np.testing.assert_array_equal(nodata_mask(pixels, [None, float("nan"), 0.0]), [[False, True], [True, False]])
    np.testing.assert_array_equal(nodata_mask(pixels, [None, None, None]), np.zeros((2, 2), bool))
    integers = np.array([[[3, 4]], [[4, 3]]], np.int16)
    np.testing.assert_array_equal(nodata_mask(integers, [4.0, float("nan")]), [[False], [True]])
    with pytest.raises(ValueError, match="2 nodata values for 3 bands"):
        nodata_mask(pixels, [1.0, 2.0])


def test_open_errors_name_parameter_and_fix(tmp_path: Path):
    with pytest.raises(RasterIOError, match="does not exist") as missing:
        open_raster(tmp_path / "nope.tif", "SOURCES")
    assert missing.value.parameter == "SOURCES"
    text = tmp_path / "notes.tif"
    text.write_text("hello, not a raster")
    with pytest.raises(RasterIOError, match="not a raster GDAL can read"):
        open_raster(text)
    with pytest.raises(RasterIOError, match="is a folder"):
        open_raster(tmp_path)
    with pytest.raises(InputError, match="no raster given"):
        open_raster("")
    gpkg = tmp_path / "points.gpkg"
    ds = gdal.GetDriverByName("GPKG").Create(str(gpkg), 0, 0, 0, gdal.GDT_Unknown)
    ds.CreateLayer("points")
    ds = None
    with pytest.raises(RasterIOError):
        open_raster(gpkg)


def test_writer_roundtrip_tiled_with_georeferencing(tmp_path: Path):
    data = encoded_values(40, 50, 2, "float32")
    out = tmp_path / "out.tif"
    gt = (100.0, 2.0, 0.0, 200.0, 0.0, -2.0)
    with GeoTiffWriter(out, 50, 40, 2, np.float32, gt, UTM31, nodata=-9999,
                       band_descriptions=["a", "b"]) as writer:
        for window in tile_grid(50, 40, 16, 16):
            assert not out.exists()
            writer.write(window, data[window.slices()])
    ds = gdal.Open(str(out))
    info = RasterInfo.from_dataset(ds)
    assert info.geotransform == gt and same_crs(info.crs_wkt, UTM31)
    assert info.nodata == (-9999.0, -9999.0) and info.dtype == "float32"
    assert ds.GetRasterBand(2).GetDescription() == "b"
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") == "ZSTD"
    assert ds.GetRasterBand(1).GetBlockSize() == [256, 256]
    np.testing.assert_array_equal(ds.ReadAsArray(interleave="pixel"), data)
    assert not list(tmp_path.glob(".*partial*"))


def test_writer_failure_leaves_nothing(tmp_path: Path):
    out = tmp_path / "out.tif"
    with pytest.raises(ZeroDivisionError), GeoTiffWriter(out, 8, 8, 1, np.uint8, (0, 1, 0, 0, 0, -1)) as writer:
        writer.write(Window(0, 0, 8, 4), np.ones((4, 8), np.uint8))
        assert partial_name(out).exists()
        _ = 1 / 0
    assert list(tmp_path.iterdir()) == []


def test_writer_replaces_existing_only_on_success(tmp_path: Path):
    out = tmp_path / "out.tif"
    with GeoTiffWriter(out, 4, 4, 1, np.uint8, (0, 1, 0, 0, 0, -1)) as writer:
        writer.write(Window(0, 0, 4, 4), np.full((4, 4), 1, np.uint8))
    with pytest.raises(RuntimeError), GeoTiffWriter(out, 4, 4, 1, np.uint8, (0, 1, 0, 0, 0, -1)) as writer:
        writer.write(Window(0, 0, 4, 4), np.full((4, 4), 2, np.uint8))
        raise RuntimeError("boom")
    assert gdal.Open(str(out)).ReadAsArray().max() == 1
    with GeoTiffWriter(out, 4, 4, 1, np.uint8, (0, 1, 0, 0, 0, -1)) as writer:
        writer.write(Window(0, 0, 4, 4), np.full((4, 4), 3, np.uint8))
    assert gdal.Open(str(out)).ReadAsArray().min() == 3


def test_writer_errors(tmp_path: Path):
    with pytest.raises(InputError, match="empty raster"):
        GeoTiffWriter(tmp_path / "x.tif", 0, 4, 1, np.uint8, (0, 1, 0, 0, 0, -1))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RasterIOError, match="cannot create the output folder"):
        GeoTiffWriter(blocker / "sub" / "x.tif", 4, 4, 1, np.uint8, (0, 1, 0, 0, 0, -1), parameter="OUTPUT")


def test_cog_output(tmp_path: Path):
    out = tmp_path / "cog.tif"
    with GeoTiffWriter(out, 600, 600, 1, np.float32, (0, 1, 0, 0, 0, -1), cog=True) as writer:
        writer.write(Window(0, 0, 600, 600), np.arange(360000, dtype=np.float32).reshape(600, 600))
    ds = gdal.Open(str(out))
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert ds.GetRasterBand(1).GetOverviewCount() >= 1
    assert ds.ReadAsArray()[599, 599] == 359999


def test_color_table_and_categories(tmp_path: Path):
    out = tmp_path / "classes.tif"
    with GeoTiffWriter(out, 4, 4, 1, np.uint8, (0, 1, 0, 0, 0, -1)) as writer:
        writer.write(Window(0, 0, 4, 4), np.zeros((4, 4), np.uint8))
        writer.set_color_table([(0, 0, 255), (0, 255, 0)], ["water", "crop"])
    ds = gdal.Open(str(out))
    band = ds.GetRasterBand(1)
    assert band.GetRasterColorTable().GetColorEntry(1)[:3] == (0, 255, 0)
    assert band.GetRasterCategoryNames()[:2] == ["water", "crop"]


def test_window_geotransform():
    gt = (100.0, 2.0, 0.0, 200.0, 0.0, -3.0)
    assert window_geotransform(gt, Window(16, 4, 10, 10)) == (132.0, 2.0, 0.0, 188.0, 0.0, -3.0)


def test_publish_together_replaces_no_previous_output_when_one_file_cannot_be_completed(tmp_path: Path):
    first, second = tmp_path / "probabilities.tif", tmp_path / "classes.tif"
    for path, value in ((first, 1), (second, 2)):  # the outputs of an earlier run
        with GeoTiffWriter(path, 4, 4, 1, np.uint8, (0, 1, 0, 0, 0, -1)) as writer:
            writer.write(Window(0, 0, 4, 4), np.full((4, 4), value, np.uint8))
    writers = [GeoTiffWriter(path, 4, 4, 1, np.uint8, (0, 1, 0, 0, 0, -1)) for path in (first, second)]
    for writer in writers:
        writer.write(Window(0, 0, 4, 4), np.full((4, 4), 9, np.uint8))

    def disk_full() -> None:
        writers[1].abort()
        raise RasterIOError("finishing failed: disk full.", "OUTPUT_CLASSES")

    writers[1].complete = disk_full  # type: ignore[method-assign]
    with pytest.raises(RasterIOError, match="disk full"):
        publish_together(writers)
    assert gdal.Open(str(first)).ReadAsArray().tolist() == [[1] * 4] * 4  # the earlier output is intact
    assert gdal.Open(str(second)).ReadAsArray().tolist() == [[2] * 4] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif", "probabilities.tif"]
    writers = [GeoTiffWriter(path, 4, 4, 1, np.uint8, (0, 1, 0, 0, 0, -1)) for path in (first, second)]
    for writer in writers:
        writer.write(Window(0, 0, 4, 4), np.full((4, 4), 9, np.uint8))
    assert publish_together(writers) == [first, second]
    assert gdal.Open(str(second)).ReadAsArray().tolist() == [[9] * 4] * 4
