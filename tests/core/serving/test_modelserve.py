"""The serving engine end to end on small rasters and models, against whole-image inference."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from otbtf_qgis.core.errors import CancelledError, InputError, ModelError, RasterIOError
from otbtf_qgis.core.io.raster import GeoTiffWriter, RasterInfo, same_crs, window_geotransform
from otbtf_qgis.core.io.windows import Window
from otbtf_qgis.core.progress import Reporter
from otbtf_qgis.core.serving import ServeConfig, SourceConfig, serve, serve_region
from otbtf_qgis.core.serving.output import merged_creation_options, write_mosaic_vrt
from otbtf_qgis.core.serving.plan import prepare
from otbtf_qgis.core.serving.stream import serve_plan
from tests.core.conftest import UTM31, make_raster

GT = (500000.0, 10.0, 0.0, 4500000.0, 0.0, -10.0)


def predict(model, **inputs) -> dict[str, np.ndarray]:
    """The Keras model on whole images (batch of one)."""
    result = model({name: value[None].astype(np.float32) for name, value in inputs.items()})
    return {name: np.asarray(tensor)[0] for name, tensor in result.items()}


def read(path: Path) -> tuple[np.ndarray, RasterInfo, gdal.Dataset]:
    dataset = gdal.Open(str(path))
    array = dataset.ReadAsArray(interleave="pixel") if dataset.RasterCount > 1 else dataset.ReadAsArray()[:, :, None]
    return array, RasterInfo.from_dataset(dataset, path), dataset


def leftovers(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def image(tmp_path) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(1).normal(size=(53, 61, 3)).astype(np.float32)
    return make_raster(tmp_path / "image.tif", data, GT), data


# --------------------------------------------------------------------- geometry, values


def test_defaults_from_model_json_and_exact_values(valid_model, image, tmp_path):
    folder, model = valid_model
    path, data = image
    result = serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder),
                               output=str(tmp_path / "out.tif")))
    # rf 14, ef 8: 61 - 14 + 8 = 55 -> 48 columns, 53 - 14 + 8 = 47 -> 40 rows, from input pixel 7 - 4 = 3
    assert (result["width"], result["height"], result["bands"]) == (48, 40, 3)
    assert result["output_names"] == ["scores"] and result["receptive_fields"] == [[14, 14]]
    out, info, dataset = read(tmp_path / "out.tif")
    assert info.geotransform == (500030.0, 10.0, 0.0, 4499970.0, 0.0, -10.0)
    assert same_crs(info.crs_wkt, UTM31) and info.dtype == "float32" and info.nodata == (None, None, None)
    assert dataset.GetRasterBand(2).GetDescription() == "scores: crop"
    assert dataset.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "ZSTD"
    expected = predict(model, input_xs=data)["scores"]  # output pixel j <-> input pixel j + 3 <-> grid pixel j
    np.testing.assert_allclose(out, expected[:40, :48], atol=1e-6)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("tile_size", [8, 16, 24, 40, 1000])
def test_any_tile_size_gives_the_whole_image_result(valid_model, image, tmp_path, tile_size):
    folder, model = valid_model
    path, data = image
    result = serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), output_names=("features",),
                               output=str(tmp_path / "out.tif"), tile_size=tile_size))
    assert result["tile_size"] == [min(tile_size, 48), min(tile_size, 40)]
    out, _, _ = read(tmp_path / "out.tif")
    np.testing.assert_allclose(out, predict(model, input_xs=data)["features"][:40, :48], atol=1e-5)


def test_same_padding_strided_model_is_tile_invariant(unet_model, tmp_path):
    folder, model = unet_model
    data = np.random.default_rng(2).integers(0, 1000, size=(130, 150, 4)).astype(np.uint16)
    path = make_raster(tmp_path / "xs.tif", data, GT)
    outputs = {}
    for tile_size in (0, 16, 48, 64):
        result = serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder),
                                   output=str(tmp_path / f"out{tile_size}.tif"), tile_size=tile_size))
        assert result["output_names"] == ["pred_crop8"] and result["expression_field"] == [16, 16]
        outputs[tile_size], info, _ = read(tmp_path / f"out{tile_size}.tif")
    # rf 32, ef 16: 150 - 32 + 16 = 134 -> 128, 130 - 32 + 16 = 114 -> 112, from input pixel 16 - 8 = 8
    assert outputs[0].shape == (112, 128, 2)
    assert info.geotransform == (500080.0, 10.0, 0.0, 4499920.0, 0.0, -10.0)
    whole = predict(model, input_xs=data)["pred"][8:8 + 112, 8:8 + 128]
    for out in outputs.values():
        np.testing.assert_allclose(out, whole, atol=1e-5)


def test_patch_based_equals_fully_convolutional(valid_model, image, tmp_path):
    folder, _ = valid_model
    path, _ = image
    common = {"model": str(folder), "output_names": ("features",), "expression_field": (1,)}
    source = SourceConfig((str(path),), receptive_field=(7,))
    full = serve(ServeConfig(sources=(source,), output=str(tmp_path / "fc.tif"), **common))
    patches = serve(ServeConfig(sources=(source,), output=str(tmp_path / "pb.tif"), fully_convolutional=False,
                                tile_size=9, **common))
    assert (full["width"], full["height"]) == (patches["width"], patches["height"]) == (55, 47)
    assert patches["tiles"] == 7 * 6
    a, info_a, _ = read(tmp_path / "fc.tif")
    b, info_b, _ = read(tmp_path / "pb.tif")
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert info_a.geotransform == info_b.geotransform == (500030.0, 10.0, 0.0, 4499970.0, 0.0, -10.0)


def test_nodata_pixels_are_the_same_in_patch_based_and_fully_convolutional_modes(valid_model, tmp_path):
    folder, _ = valid_model
    data = np.random.default_rng(6).uniform(1, 2, size=(53, 61, 3)).astype(np.float32)
    data[10:20, 5:40, 1] = 0  # one band of a block is nodata
    path = make_raster(tmp_path / "holes.tif", data, GT, nodata=0)
    common = {"model": str(folder), "output_names": ("features",), "expression_field": (1,), "background": -7}
    source = SourceConfig((str(path),), receptive_field=(7,))
    serve(ServeConfig(sources=(source,), output=str(tmp_path / "fc.tif"), **common))
    serve(ServeConfig(sources=(source,), output=str(tmp_path / "pb.tif"), fully_convolutional=False, tile_size=9,
                      **common))
    a, b = read(tmp_path / "fc.tif")[0], read(tmp_path / "pb.tif")[0]
    np.testing.assert_allclose(a, b, atol=1e-5)
    expected = np.zeros(a.shape[:2], dtype=bool)
    expected[10 - 3:20 - 3, 5 - 3:40 - 3] = True  # output pixel (r, c) is centred on input pixel (r + 3, c + 3)
    np.testing.assert_array_equal((a == -7).all(axis=2), expected)


def test_nodata_values_are_compared_as_the_model_reads_them(valid_model, tmp_path):
    folder, _ = valid_model
    # A float64 source read as float32 (the model's input): its nodata 0.1 is float32(0.1) once read.
    data = np.random.default_rng(7).uniform(1, 2, size=(53, 61, 3))
    data[10:20, 10:30, 0] = 0.1
    path = make_raster(tmp_path / "f64.tif", data, GT, nodata=0.1)
    serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), output_names=("features",),
                      output=str(tmp_path / "out.tif"), background=-7))
    out = read(tmp_path / "out.tif")[0]
    expected = np.zeros(out.shape[:2], dtype=bool)
    expected[10 - 3:20 - 3, 10 - 3:30 - 3] = True  # output pixel (r, c) is centred on input pixel (r + 3, c + 3)
    np.testing.assert_array_equal((out == -7).all(axis=2), expected)


def test_a_nodata_the_input_type_cannot_hold_masks_nothing(tmp_path):
    from tests.core.saved_models import predictions_model

    predictions_model(tmp_path / "model")  # uint16 input
    data = np.random.default_rng(8).integers(0, 4000, size=(100, 90, 4)).astype(np.uint16)
    data[20:60, 20:60] = 55537  # what -9999 wraps to as uint16
    path = make_raster(tmp_path / "image.tif", data, GT)
    result = serve(ServeConfig(sources=(SourceConfig((str(path),), receptive_field=(64,), nodata=-9999),),
                               model=str(tmp_path / "model"), output_names=("predictions_crop16",),
                               expression_field=(32,), output=str(tmp_path / "out.tif"), background=-7))
    out = read(tmp_path / "out.tif")[0]
    assert result["skipped_tiles"] == 0 and result["nodata"] == -7 and not (out == -7).any()


def test_patch_model_with_fixed_input_takes_its_receptive_field_from_the_signature(fixed_patch_model, image,
                                                                                     tmp_path):
    folder, model = fixed_patch_model
    path, data = image
    result = serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), fully_convolutional=False,
                               output=str(tmp_path / "out.tif")))
    assert result["receptive_fields"] == [[7, 7]] and (result["width"], result["height"]) == (55, 47)
    out, info, _ = read(tmp_path / "out.tif")
    assert info.geotransform[0] == 500030.0
    windows = np.lib.stride_tricks.sliding_window_view(data, (7, 7), axis=(0, 1))  # (47, 55, 3, 7, 7)
    patches = windows.transpose(0, 1, 3, 4, 2).reshape(-1, 7, 7, 3)
    expected = np.asarray(model({"patch": patches})["scores"]).reshape(47, 55, 3)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_two_resolutions_with_spacing_scale(two_resolution_model, tmp_path):
    folder, model = two_resolution_model
    rng = np.random.default_rng(3)
    hi = rng.normal(size=(76, 92, 1)).astype(np.float32)
    lo = rng.normal(size=(38, 46, 2)).astype(np.float32)
    hi_path = make_raster(tmp_path / "hi.tif", hi, (1000.0, 1.0, 0.0, 2000.0, 0.0, -1.0))
    lo_path = make_raster(tmp_path / "lo.tif", lo, (1000.0, 2.0, 0.0, 2000.0, 0.0, -2.0))
    outputs = {}
    for tile_size in (8, 24, 0):
        result = serve(ServeConfig(sources=(SourceConfig((str(hi_path),)), SourceConfig((str(lo_path),))),
                                   model=str(folder), spacing_scale=2, tile_size=tile_size,
                                   output=str(tmp_path / f"out{tile_size}.tif")))
        assert result["receptive_fields"] == [[19, 19], [10, 10]] and result["placeholders"] == ["hi", "lo"]
        outputs[tile_size], info, _ = read(tmp_path / f"out{tile_size}.tif")
    # common extent [10, 92 - 9) fine pixels -> 36 + 7 = 43 -> 40 columns of 2 m; 76 -> 27 + 7 -> 32 rows.
    # Output pixel j is computed from coarse pixel j + 1 (fine pixels 2j + 2, 2j + 3).
    assert outputs[0].shape == (32, 40, 2)
    assert info.geotransform == (1002.0, 2.0, 0.0, 1998.0, 0.0, -2.0)
    whole = predict(model, hi=hi, lo=lo)["out"]
    for out in outputs.values():
        np.testing.assert_allclose(out, whole[:32, :40], atol=1e-5)


def test_several_rasters_stacked_as_one_source(valid_model, image, tmp_path):
    folder, model = valid_model
    _, data = image
    first = make_raster(tmp_path / "b1.tif", data[:, :, :1], GT)
    rest = make_raster(tmp_path / "b23.tif", data[:, :, 1:], GT)
    serve(ServeConfig(sources=(SourceConfig((str(first), str(rest))),), model=str(folder),
                      output=str(tmp_path / "out.tif"), tile_size=16))
    out, _, _ = read(tmp_path / "out.tif")
    np.testing.assert_allclose(out, predict(model, input_xs=data)["scores"][:40, :48], atol=1e-6)
    with pytest.raises(InputError, match="do not share one grid"):
        other = make_raster(tmp_path / "shifted.tif", data[:, :, 1:], (500010.0, 10.0, 0.0, 4500000.0, 0.0, -10.0))
        serve(ServeConfig(sources=(SourceConfig((str(first), str(other))),), model=str(folder),
                          output=str(tmp_path / "bad.tif")))


# ---------------------------------------------------------------- nodata, placeholders


def test_tiles_entirely_nodata_get_the_background(valid_model, tmp_path):
    folder, model = valid_model
    data = np.random.default_rng(4).uniform(1, 2, size=(53, 61, 3)).astype(np.float32)
    data[:, :30] = 0  # the left half is nodata
    path = make_raster(tmp_path / "image.tif", data, GT, nodata=0)
    result = serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), output_names=("features",),
                               output=str(tmp_path / "out.tif"), tile_size=8, background=-7))
    out, info, _ = read(tmp_path / "out.tif")
    assert info.nodata == (-7.0, -7.0, -7.0)
    expected = predict(model, input_xs=data)["features"][:40, :48]
    # output pixel j is centred on input pixel j + 3: nodata for j < 27. Tile [a, a + 8) has no valid pixel
    # when a + 7 + 3 < 30 (OTBTF skips those whose input [a, a + 14) is all nodata: a + 14 <= 30, the same here)
    assert [a for a in range(0, 48, 8) if a + 10 < 30] == [0, 8, 16]
    assert result["skipped_tiles"] == 3 * 5 and result["nodata"] == -7
    assert (out[:, :27] == -7).all()
    np.testing.assert_allclose(out[:, 27:], expected[:, 27:], atol=1e-5)
    # the nodata pixels do not depend on the tiles
    for tile_size in (16, 40):
        serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), output_names=("features",),
                          output=str(tmp_path / f"tiles{tile_size}.tif"), tile_size=tile_size, background=-7))
        np.testing.assert_allclose(read(tmp_path / f"tiles{tile_size}.tif")[0], out, atol=1e-5)
    # NODATA given explicitly, or nodata ignored
    serve(ServeConfig(sources=(SourceConfig((str(path),), use_nodata=False),), model=str(folder),
                      output_names=("features",), output=str(tmp_path / "all.tif"), tile_size=8))
    everything, info, _ = read(tmp_path / "all.tif")
    assert info.nodata == (None, None, None)
    np.testing.assert_allclose(everything, expected, atol=1e-5)


def test_user_placeholders(gain_model, image, tmp_path):
    folder, model = gain_model
    path, data = image
    for gain in (1.0, 2.5):
        serve(ServeConfig(sources=(SourceConfig((str(path),), receptive_field=(3,)),), model=str(folder),
                          expression_field=(1,), user_placeholders=(f"gain={gain}",),
                          output=str(tmp_path / f"gain{gain}.tif"), tile_size=16))
    one, _, _ = read(tmp_path / "gain1.0.tif")
    twice, _, _ = read(tmp_path / "gain2.5.tif")
    expected = np.asarray(model({"input_xs": data[None], "gain": np.array([1.0], np.float32)})["scaled"])[0]
    np.testing.assert_allclose(one, expected, atol=1e-5)
    np.testing.assert_allclose(twice, 2.5 * expected, atol=1e-4)
    with pytest.raises(InputError, match=r"input\(s\) gain \[\?\] float32 are not fed.*USER_PLACEHOLDERS"):
        serve(ServeConfig(sources=(SourceConfig((str(path),), receptive_field=(3,)),), model=str(folder),
                          expression_field=(1,), output=str(tmp_path / "x.tif")))
    with pytest.raises(InputError, match="'gain=lots' does not fit the model input gain"):
        serve(ServeConfig(sources=(SourceConfig((str(path),), receptive_field=(3,)),), model=str(folder),
                          expression_field=(1,), user_placeholders=("gain=lots",), output=str(tmp_path / "x.tif")))
    with pytest.raises(InputError, match=r"no input 'dropout'. Its inputs are: .*gain"):
        serve(ServeConfig(sources=(SourceConfig((str(path),), receptive_field=(3,)),), model=str(folder),
                          expression_field=(1,), user_placeholders=("gain=1", "dropout=0.1"),
                          output=str(tmp_path / "x.tif")))
    assert not (tmp_path / "x.tif").exists()


def test_expression_field_probed_without_model_json(tmp_path, image):
    from tests.core import saved_models as models

    folder = tmp_path / "bare"
    models.valid_model(folder, metadata=False)
    path, _ = image
    with pytest.raises(InputError, match=r"choose the model output.*features, scores") as error:
        serve(ServeConfig(sources=(SourceConfig((str(path),), receptive_field=(14,)),), model=str(folder),
                          output=str(tmp_path / "out.tif")))
    assert error.value.parameter == "OUTPUT_NAMES"
    with pytest.raises(InputError, match="Give RFIELDS"):
        serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), output_names=("scores",),
                          output=str(tmp_path / "out.tif")))
    result = serve(ServeConfig(sources=(SourceConfig((str(path),), receptive_field=(14,)),), model=str(folder),
                               output_names=("scores",), output=str(tmp_path / "out.tif")))
    assert result["expression_field"] == [8, 8]


# -------------------------------------------------------------- outputs and options


def test_class_map_output_type_and_creation_options(valid_model, image, tmp_path):
    folder, model = valid_model
    path, data = image
    serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), output=str(tmp_path / "out.tif"),
                      output_names=("scores", "features"), output_type="int16", creation_options=("COMPRESS=LZW",),
                      output_classes=str(tmp_path / "classes.tif"), tile_size=16))
    out, info, dataset = read(tmp_path / "out.tif")
    assert info.dtype == "int16" and out.shape == (40, 48, 6)
    assert dataset.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "LZW"
    assert dataset.GetMetadata()["otbtf_outputs"] == "scores;features"
    expected = predict(model, input_xs=data)
    np.testing.assert_array_equal(out[:, :, 3:], np.rint(expected["features"][:40, :48]).astype(np.int16))
    classes, class_info, class_ds = read(tmp_path / "classes.tif")
    assert class_info.dtype == "uint8" and class_info.geotransform == info.geotransform
    np.testing.assert_array_equal(classes[:, :, 0], np.argmax(expected["scores"][:40, :48], axis=2))
    band = class_ds.GetRasterBand(1)
    assert band.GetColorInterpretation() == gdal.GCI_PaletteIndex
    assert band.GetRasterCategoryNames() == ["water", "crop", "tree"]
    assert band.GetColorTable().GetCount() >= 3


def test_cog_output(valid_model, image, tmp_path):
    folder, _ = valid_model
    path, _ = image
    serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), output=str(tmp_path / "cog.tif"),
                      cog=True))
    assert gdal.Open(str(tmp_path / "cog.tif")).GetMetadata("IMAGE_STRUCTURE")["LAYOUT"] == "COG"


def test_merged_creation_options():
    assert merged_creation_options([]) == ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=ZSTD",
                                           "ZSTD_LEVEL=1", "BIGTIFF=IF_SAFER"]
    assert merged_creation_options(["compress=DEFLATE", "PREDICTOR=3"]) == [
        "TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER", "PREDICTOR=3"]
    assert merged_creation_options(["TILED=NO"]) == ["TILED=NO", "COMPRESS=ZSTD", "ZSTD_LEVEL=1", "BIGTIFF=IF_SAFER"]


def test_regions_mosaic_to_the_single_file_output(unet_model, tmp_path):
    folder, _ = unet_model
    data = np.random.default_rng(5).integers(0, 1000, size=(130, 150, 4)).astype(np.uint16)
    path = make_raster(tmp_path / "xs.tif", data, GT)
    config = ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), output=str(tmp_path / "all.tif"),
                         tile_size=32)
    serve(config)
    regions = [Window(0, 0, 64, 48), Window(64, 0, 64, 48), Window(0, 48, 80, 64), Window(80, 48, 999, 999)]
    plan = prepare(config)
    paths = []
    for number, region in enumerate(regions):
        paths.append(tmp_path / f"region{number}.tif")
        result = serve_plan(plan, paths[-1], region)
        assert result["region"][:2] == [region.col_off, region.row_off]
    assert result["region"] == [80, 48, 48, 64]
    single = serve_region(config, Window(16, 16, 32, 32), str(tmp_path / "single.tif"))
    assert single["width"] == 32
    vrt = write_mosaic_vrt(paths, tmp_path / "mosaic.vrt")
    mosaic, mosaic_info, _ = read(vrt)
    whole, whole_info, _ = read(tmp_path / "all.tif")
    single_pixels, single_info, _ = read(tmp_path / "single.tif")
    np.testing.assert_array_equal(single_pixels, whole[16:48, 16:48])
    assert single_info.geotransform[0] == whole_info.geotransform[0] + 16 * whole_info.geotransform[1]
    assert mosaic_info.geotransform == whole_info.geotransform and mosaic.shape == whole.shape
    np.testing.assert_array_equal(mosaic, whole)
    unaligned = serve_plan(plan, tmp_path / "unaligned.tif", Window(5, 3, 70, 50))
    assert unaligned["region"] == [5, 3, 70, 50] and unaligned["tiles"] == 6  # 3x2 tiles of 32 from (0, 0)
    pixels, info, _ = read(tmp_path / "unaligned.tif")
    np.testing.assert_array_equal(pixels, whole[3:53, 5:75])
    assert info.geotransform == window_geotransform(whole_info.geotransform, Window(5, 3, 70, 50))
    with pytest.raises(InputError, match="outside the output grid"):
        serve_plan(plan, tmp_path / "bad.tif", Window(500, 0, 16, 16))


# ------------------------------------------------------------------- bad input, failures


def test_bad_models_and_names(valid_model, image, tmp_path):
    folder, _ = valid_model
    path, _ = image
    source = SourceConfig((str(path),))

    def attempt(**kwargs):
        settings = {"sources": (source,), "model": str(folder), "output": str(tmp_path / "out.tif"), **kwargs}
        serve(ServeConfig(**settings))

    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="is not a SavedModel"):
        attempt(model=str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="does not exist"):
        attempt(model=str(tmp_path / "missing"))
    with pytest.raises(InputError, match=r"'probabilities' is not an output.*Available outputs: features, scores"):
        attempt(output_names=("probabilities",))
    with pytest.raises(InputError, match=r"no input 'input_pan'. Its inputs are: input_xs"):
        attempt(sources=(SourceConfig((str(path),), placeholder="input_pan"),))
    with pytest.raises(InputError, match="2 sources were given but the model takes 1"):
        attempt(sources=(source, source))
    two_bands = make_raster(tmp_path / "two.tif", np.zeros((53, 61, 2), np.float32), GT)
    with pytest.raises(InputError, match=r"source 1 has 2 band.* takes 3"):
        attempt(sources=(SourceConfig((str(two_bands),)),))
    with pytest.raises(InputError, match=r"has 20x20 pixels for an input of 26x26.*should have 16x16"):
        attempt(expression_field=(4,), tile_size=16)
    with pytest.raises(InputError, match="EFIELD must be 1"):
        attempt(fully_convolutional=False, expression_field=(8,))
    with pytest.raises(InputError, match=r"one pixel per patch, but 'scores' has shape \[8, 8, 3\] per patch"):
        attempt(fully_convolutional=False)
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.tif").exists()


def test_bad_geometry(valid_model, two_resolution_model, image, tmp_path):
    folder, _ = valid_model
    path, data = image

    def attempt(*sources, **kwargs):
        serve(ServeConfig(sources=sources, model=str(folder), output=str(tmp_path / "out.tif"), **kwargs))

    with pytest.raises(InputError, match=r"cannot cover the expression field.*1 \+ \(8 - 1\) x 1 x 1 = 8") as small:
        attempt(SourceConfig((str(path),), receptive_field=(6,)))
    assert small.value.parameter == "RFIELDS"
    with pytest.raises(InputError, match="SPCSCALE"):
        attempt(SourceConfig((str(path),)), expression_field=(3,), spacing_scale=0.5)
    with pytest.raises(InputError, match="source 1 is 10 pixels along x, smaller than its receptive field 14"):
        tiny = make_raster(tmp_path / "tiny.tif", data[:10, :10], GT)
        attempt(SourceConfig((str(tiny),)))
    with pytest.raises(InputError, match=r"too small along x: .* leave 0.5 output pixels, less than the expression"):
        narrow = make_raster(tmp_path / "narrow.tif", data[:, :15], GT)
        attempt(SourceConfig((str(narrow),), receptive_field=(15,)), spacing_scale=2)
    hi = make_raster(tmp_path / "hi.tif", data[:, :, :1], GT)
    far = make_raster(tmp_path / "far.tif", data[:, :, :2], (600000.0, 20.0, 0.0, 4500000.0, 0.0, -20.0))
    with pytest.raises(InputError, match="the sources do not overlap"):
        serve(ServeConfig(sources=(SourceConfig((str(hi),)), SourceConfig((str(far),))),
                          model=str(two_resolution_model[0]), spacing_scale=2, output=str(tmp_path / "out.tif")))
    other_crs = make_raster(tmp_path / "wgs84.tif", data, GT, crs_wkt=gdal.osr.SpatialReference(
        gdal.osr.GetUserInputAsWKT("EPSG:4326")).ExportToWkt())
    with pytest.raises(InputError, match="not in the CRS of"):
        attempt(SourceConfig((str(path),)), SourceConfig((str(other_crs),)))
    rotated = make_raster(tmp_path / "rotated.tif", data, (500000.0, 10.0, 1.0, 4500000.0, 0.0, -10.0))
    with pytest.raises(InputError, match="rotated or not north-up"):
        attempt(SourceConfig((str(rotated),)))
    with pytest.raises(InputError, match="BACKGROUND 300 cannot be stored as uint8"):
        nodata = make_raster(tmp_path / "nodata.tif", data, GT, nodata=0)
        attempt(SourceConfig((str(nodata),)), output_type="uint8", background=300)
    assert not (tmp_path / "out.tif").exists()


def test_unwritable_output_fails_before_the_model_runs(valid_model, image, tmp_path):
    folder, _ = valid_model
    path, _ = image
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RasterIOError, match="cannot create the output folder") as error:
        serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder),
                          output=str(blocker / "sub" / "out.tif")))
    assert error.value.parameter == "OUTPUT"


def test_write_failing_midway_leaves_nothing(valid_model, image, tmp_path, monkeypatch):
    folder, _ = valid_model
    path, _ = image
    original = GeoTiffWriter.write
    calls = []

    def failing_write(self, window, array):
        calls.append(window)
        if len(calls) == 4:
            raise RasterIOError(f"writing '{self.path}' failed at {window}: No space left on device. "
                                "Check the free disk space.", self.parameter)
        original(self, window, array)

    monkeypatch.setattr(GeoTiffWriter, "write", failing_write)
    with pytest.raises(RasterIOError, match="No space left on device"):
        serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), output=str(tmp_path / "out.tif"),
                          output_classes=str(tmp_path / "classes.tif"), tile_size=8))
    assert len(calls) == 4
    assert not (tmp_path / "out.tif").exists() and not (tmp_path / "classes.tif").exists()
    assert leftovers(tmp_path) == []


class CancelAfter(Reporter):
    def __init__(self, count: int) -> None:
        self.count = count
        self.values: list[float] = []

    def progress(self, fraction: float) -> None:
        self.values.append(fraction)

    def is_canceled(self) -> bool:
        return len(self.values) >= self.count


def test_cancel_leaves_no_output_and_progress_is_per_tile(valid_model, image, tmp_path):
    folder, _ = valid_model
    path, _ = image
    config = ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), output=str(tmp_path / "out.tif"),
                         tile_size=8)
    with pytest.raises(CancelledError):
        serve(config, CancelAfter(5))
    assert not (tmp_path / "out.tif").exists() and leftovers(tmp_path) == []
    reporter = CancelAfter(10**9)
    result = serve(config, reporter)
    assert result["tiles"] == 30
    tile_values = [v for v in reporter.values if 0.05 <= v < 1.0]
    assert len(tile_values) >= 30 and tile_values == sorted(tile_values) and reporter.values[-1] == 1.0


def test_worker_command_line(valid_model, image, tmp_path):
    import sys

    from otbtf_qgis.core.jobs.client import run_worker
    from otbtf_qgis.core.jobs.codec import config_to_dict

    folder, _ = valid_model
    path, _ = image
    config = ServeConfig(sources=(SourceConfig((str(path),), nodata=0.0),), model=str(folder),
                         output=str(tmp_path / "out.tif"))
    result = run_worker(sys.executable, "modelserve", config_to_dict(config), outputs=[tmp_path / "out.tif"])
    assert result["width"] == 48 and (tmp_path / "out.tif").exists()
    # the worker splits TensorFlow's threads between two concurrent tiles
    assert result["model_workers"] == (2 if (os.cpu_count() or 1) >= 2 else 1)


@pytest.mark.parametrize("patch", [64, 32])
def test_the_fcnn_exported_by_training_serves_with_its_defaults(tmp_path, patch):
    """Trained on 32-pixel patches, no crop is padding-free at 32: the defaults serve 64-pixel inputs."""
    import keras
    import tensorflow as tf

    from otbtf_qgis.core.models.export import export_model
    from otbtf_qgis.core.models.fcnn import FCNNModel

    keras.utils.set_random_seed(3)
    model = FCNNModel(({"input_xs": tf.TensorSpec((None, patch, patch, 4), tf.uint16)}, {}), n_classes=3)
    description = export_model(model, tmp_path / "fcnn", {"input_xs": (patch, patch)}, ["water", "crop", "tree"])
    assert description["serving"] == {"output_name": "predictions_softmax_tensor_crop16",
                                      "receptive_field": [64, 64], "expression_field": [32, 32]}
    assert description["inputs"]["input_xs"]["patch_size"] == [patch, patch]
    data = np.random.default_rng(6).integers(0, 4000, size=(192, 224, 4)).astype(np.uint16)
    path = make_raster(tmp_path / "xs.tif", data, GT)
    outputs = []
    for tile_size in (0, 32, 96):
        result = serve(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(tmp_path / "fcnn"),
                                   output=str(tmp_path / "out.tif"), tile_size=tile_size))
        assert result["output_names"] == ["predictions_softmax_tensor_crop16"]
        assert (result["receptive_fields"], result["expression_field"]) == ([[64, 64]], [32, 32])
        out, info, _ = read(tmp_path / "out.tif")
        outputs.append(out)
    # 224 - 64 + 32 = 192 columns, 192 - 64 + 32 = 160 rows, from input pixel 16
    assert out.shape == (160, 192, 3) and info.geotransform[0] == GT[0] + 16 * 10
    whole = np.asarray(model.inference_model({"input_xs": data[None]})["predictions_softmax_tensor"])[0]
    for out in outputs:
        np.testing.assert_allclose(out, whole[16:176, 16:208], atol=1e-5)


def test_concurrent_model_workers_give_the_same_output(unet_model, tmp_path):
    folder, _ = unet_model
    data = np.random.default_rng(8).integers(1, 1000, size=(130, 150, 4)).astype(np.uint16)
    data[:40, :60] = 0
    path = make_raster(tmp_path / "holes.tif", data, GT, nodata=0)
    plan = prepare(ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder),
                               output=str(tmp_path / "one.tif"), tile_size=16))
    assert plan.workers == 1  # TensorFlow's threads were not split in this process
    one = serve_plan(plan, tmp_path / "one.tif")
    plan.workers = 3
    three = serve_plan(plan, tmp_path / "three.tif", output_classes=str(tmp_path / "classes.tif"))
    assert one["tiles"] == three["tiles"] == 56 and one["skipped_tiles"] == three["skipped_tiles"] > 0
    values = read(tmp_path / "one.tif")[0]
    np.testing.assert_array_equal(values, read(tmp_path / "three.tif")[0])
    classes = read(tmp_path / "classes.tif")[0][:, :, 0]
    skipped = classes == 255  # the class map's nodata, where tiles were all nodata
    assert skipped.any() and (values[skipped] == 0).all()
    np.testing.assert_array_equal(classes[~skipped], np.argmax(values, axis=2)[~skipped])


def test_one_model_worker_per_gpu_each_on_its_device(unet_model, tmp_path, monkeypatch):
    """No GPU here: two workers on the one CPU device, named as GPUs would be, give the same output."""
    import contextlib
    import threading

    from otbtf_qgis.core.models import saved_model
    from otbtf_qgis.core.serving import plan as plan_module
    from otbtf_qgis.core.serving import stream

    folder, _ = unet_model
    data = np.random.default_rng(9).integers(1, 1000, size=(130, 150, 4)).astype(np.uint16)
    path = make_raster(tmp_path / "xs.tif", data, GT)
    config = ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), output=str(tmp_path / "cpu.tif"),
                         tile_size=16)
    cpu = serve(config)
    assert cpu["devices"] == []
    devices = ["/device:CPU:0", "/job:localhost/replica:0/task:0/device:CPU:0"]  # two names of the one CPU
    monkeypatch.setattr(plan_module, "gpu_devices", lambda: devices)
    used: list[tuple[str | None, str]] = []

    @contextlib.contextmanager
    def recording(device):
        used.append((device, threading.current_thread().name))
        with saved_model.on_device(device):
            yield

    monkeypatch.setattr(stream, "on_device", recording)
    result = serve(dataclasses.replace(config, output=str(tmp_path / "gpus.tif")))
    assert result["model_workers"] == 2 and result["devices"] == devices
    assert {device for device, _ in used} == set(devices) and len(used) == result["tiles"] == 56
    assert {thread for device, thread in used if device == devices[0]} == {"otbtf-serve-model-0"}
    np.testing.assert_array_equal(read(tmp_path / "gpus.tif")[0], read(tmp_path / "cpu.tif")[0])
