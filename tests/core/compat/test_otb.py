"""OTBTF-compatible entry points: OTBTF's dicts and command lines give the pixels of our own jobs.

The references are our engine's own entry points, run independently: ``otbtf:modelserve``
through the real qgis_process, :func:`serve` and :func:`patches_extraction`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from otbtf_qgis.core.compat.filenames import parse_extended_filename
from otbtf_qgis.core.compat.otb import PatchesExtraction, TensorflowModelServe, extraction_request, serve_request
from otbtf_qgis.core.compat.otbcli import parse_command_line
from otbtf_qgis.core.data.patchesextraction import PatchesExtractionConfig, patches_extraction
from otbtf_qgis.core.errors import InputError, ModelError
from otbtf_qgis.core.io.windows import Window
from otbtf_qgis.core.serving import ServeConfig, SourceConfig, serve
from tests.core.conftest import encoded_values, make_raster
from tests.core.saved_models import predictions_model, two_resolution_model
from tests.processing.conftest import ROOT, dev_profile, run_json  # noqa: F401 - dev_profile is a fixture
from tests.vector_data import write_points

SPOT6_GEOTRANSFORM = (345678.0, 1.5, 0.0, 5123456.0, 0.0, -1.5)
SCRIPTS = ROOT / "scripts"


def read(path: Path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


@pytest.fixture(scope="module")
def spot6(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fake_spot6-like image (4-band uint16, 300 x 300 at 1.5 m) and a model with OTBTF's tutorial names."""
    folder = tmp_path_factory.mktemp("spot6")
    data = np.random.default_rng(6).integers(0, 4000, size=(300, 300, 4)).astype(np.uint16)
    image = make_raster(folder / "fake_spot6.tif", data, geotransform=SPOT6_GEOTRANSFORM)
    predictions_model(folder / "model")
    return {"folder": folder, "image": image, "model": folder / "model"}


def seed_dict(spot6: dict[str, Path], out: str) -> dict:
    """The pyotb-style dictionary of the seed document (input_xs, rf 64, ef 32, predictions_crop16)."""
    return {
        "source1.il": [str(spot6["image"])],
        "source1.rfieldx": 64,
        "source1.rfieldy": 64,
        "source1.placeholder": "input_xs",
        "model.dir": str(spot6["model"]),
        "model.fullyconv": True,
        "output.names": ["predictions_crop16"],
        "output.efieldx": 32,
        "output.efieldy": 32,
        "out": out,
    }


def reference(spot6: dict[str, Path], out: Path, **changes) -> Path:
    config = ServeConfig((SourceConfig((str(spot6["image"]),), (64,), "input_xs"),), str(spot6["model"]), str(out),
                         ("predictions_crop16",), (32,), **changes)
    serve(config)
    return out


def test_seed_command_line_and_dict_give_the_pixels_of_modelserve(spot6, dev_profile, tmp_path):  # noqa: F811
    image, model = spot6["image"], spot6["model"]
    by_qgis = tmp_path / "qgis.tif"
    run_json(["run", "otbtf:modelserve", "--", f"SOURCES={image}", f"MODEL={model}", "RFIELDS=64",
              "PLACEHOLDERS=input_xs", "OUTPUT_NAMES=predictions_crop16", "EFIELD=32", "FULLYCONV=true",
              f"OUTPUT={by_qgis}"], dev_profile)
    by_cli = tmp_path / "cli.tif"
    done = subprocess.run([str(SCRIPTS / "otbcli_TensorflowModelServe"),
                           "-source1.il", str(image), "-source1.rfieldx", "64", "-source1.rfieldy", "64",
                           "-source1.placeholder", "input_xs", "-model.dir", str(model), "-model.fullyconv", "on",
                           "-output.names", "predictions_crop16", "-output.efieldx", "32", "-output.efieldy", "32",
                           "-out", f"{by_cli}?&gdal:co:compress=deflate", "float"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OTBTF_QGIS_PYTHON": str(ROOT / ".venv" / "bin" / "python")})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == str(by_cli)
    by_dict = tmp_path / "dict.tif"
    summary = TensorflowModelServe(seed_dict(spot6, str(by_dict)))

    expected = gdal.Open(str(by_qgis))
    # 300 - 64 + 32 = 268 columns, rounded down to 256 (whole expression fields), from input pixel 16
    assert (expected.RasterXSize, expected.RasterYSize, expected.RasterCount) == (256, 256, 2)
    assert expected.GetGeoTransform() == pytest.approx((345678.0 + 16 * 1.5, 1.5, 0.0, 5123456.0 - 16 * 1.5, 0.0,
                                                        -1.5))
    for path in (by_cli, by_dict):
        written = gdal.Open(str(path))
        np.testing.assert_array_equal(written.ReadAsArray(), expected.ReadAsArray())
        assert written.GetGeoTransform() == expected.GetGeoTransform()
        assert written.GetSpatialRef().IsSame(expected.GetSpatialRef())
        assert gdal.GetDataTypeName(written.GetRasterBand(1).DataType) == "Float32"
    assert gdal.Open(str(by_cli)).GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
    assert summary["output_names"] == ["predictions_crop16"] and summary["receptive_fields"] == [[64, 64]]


def test_extended_filename_gives_creation_options(spot6, tmp_path):
    out = tmp_path / "deflate.tif"
    TensorflowModelServe(seed_dict(spot6, f"{out}?&gdal:co:COMPRESS=DEFLATE&gdal:co:ZLEVEL=6&gdal:co:PREDICTOR=3"
                                          "&writegeom=false&streaming:type=tiled&streaming:sizevalue=256"))
    written = gdal.Open(str(out))
    assert written.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
    assert written.GetMetadata("IMAGE_STRUCTURE")["PREDICTOR"] == "3"
    np.testing.assert_array_equal(written.ReadAsArray(), read(reference(spot6, tmp_path / "ref.tif")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deflate.tif", "ref.tif"]  # no .geom, nothing left over


def test_box_writes_that_region_of_the_output(spot6, tmp_path):
    full = read(reference(spot6, tmp_path / "full.tif"))
    out = tmp_path / "box.tif"
    # not aligned on the expression field (32): the engine serves the covering region and crops it
    summary = TensorflowModelServe(seed_dict(spot6, f"{out}?&box=40:7:100:50&gdal:co:COMPRESS=LZW"))
    written = gdal.Open(str(out))
    np.testing.assert_array_equal(written.ReadAsArray(), full[:, 7:57, 40:140])
    x0, y0 = 345678.0 + (16 + 40) * 1.5, 5123456.0 - (16 + 7) * 1.5
    assert written.GetGeoTransform() == pytest.approx((x0, 1.5, 0.0, y0, 0.0, -1.5))
    assert summary["geotransform"] == pytest.approx([x0, 1.5, 0.0, y0, 0.0, -1.5])
    assert (summary["width"], summary["height"]) == (100, 50)
    assert written.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "LZW"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box.tif", "full.tif"]

    with pytest.raises(InputError, match="leaves the output image") as error:
        TensorflowModelServe(seed_dict(spot6, f"{tmp_path / 'outside.tif'}?&box=200:0:100:10"))
    assert error.value.parameter == "out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box.tif", "full.tif"]


def test_pixel_type_after_the_file_name(spot6, tmp_path):
    expected = read(reference(spot6, tmp_path / "ref.tif"))
    TensorflowModelServe(seed_dict(spot6, [str(tmp_path / "double.tif"), "double"]))
    written = gdal.Open(str(tmp_path / "double.tif"))
    assert gdal.GetDataTypeName(written.GetRasterBand(1).DataType) == "Float64"
    np.testing.assert_array_equal(written.ReadAsArray(), expected.astype(np.float64))
    TensorflowModelServe(seed_dict(spot6, [str(tmp_path / "bytes.tif"), "uint8"]))
    assert gdal.GetDataTypeName(gdal.Open(str(tmp_path / "bytes.tif")).GetRasterBand(1).DataType) == "Byte"
    np.testing.assert_array_equal(read(tmp_path / "bytes.tif"), np.rint(expected).astype(np.uint8))
    with pytest.raises(InputError, match="complex pixel type 'cfloat' is not supported"):
        TensorflowModelServe(seed_dict(spot6, [str(tmp_path / "c.tif"), "cfloat"]))


def test_unknown_keys_are_named_with_the_supported_ones(spot6, tmp_path):
    params = seed_dict(spot6, str(tmp_path / "out.tif"))
    del params["source1.rfieldy"]
    params["source1.rfield"] = 64
    with pytest.raises(InputError) as error:
        TensorflowModelServe(params)
    assert error.value.parameter == "source1.rfield"
    assert "'source1.rfield' is not a parameter of TensorflowModelServe" in error.value.message
    assert "Did you mean 'source1.rfieldx'?" in error.value.message or "Did you mean 'source1.rfieldy'?" in \
        error.value.message
    assert "Supported keys: source<N>.il, source<N>.rfieldx, source<N>.rfieldy" in error.value.message
    assert "optim.tilesizey, out" in error.value.message
    with pytest.raises(InputError, match="'ram' is not a parameter") as error:
        TensorflowModelServe({**seed_dict(spot6, str(tmp_path / "out.tif")), "ram": 256})
    with pytest.raises(InputError, match="'vec' is not a parameter of TensorflowModelServe"):
        TensorflowModelServe({**seed_dict(spot6, str(tmp_path / "out.tif")), "vec": "points.gpkg"})
    with pytest.raises(InputError, match=r"'output.efield' is not a parameter of PatchesExtraction"):
        PatchesExtraction({"source1.il": "a.tif", "output.efield": 3})
    assert not (tmp_path / "out.tif").exists()


def test_unsupported_extended_filename_options_are_refused(spot6, tmp_path):
    for option in ("nodata=0", "bands=1,2", "gdal:of=COG", "writerpctags=true"):
        with pytest.raises(InputError, match=f"option '{option.split('=')[0]}' .* is not supported here") as error:
            TensorflowModelServe(seed_dict(spot6, f"{tmp_path / 'out.tif'}?&{option}"))
        assert error.value.parameter == "out"
        assert "Supported: gdal:co:<KEY>=<VALUE>, box=<x>:<y>:<width>:<height>, writegeom=" in error.value.message
    with pytest.raises(InputError, match="start with '\\?&'"):
        parse_extended_filename("out.tif?gdal:co:COMPRESS=LZW", "out")
    with pytest.raises(InputError, match="writegeom takes true"):
        parse_extended_filename("out.tif?&writegeom=maybe", "out")
    with pytest.raises(InputError, match=r"box '1:2:3' .* is not startx:starty:sizex:sizey"):
        parse_extended_filename("out.tif?&box=1:2:3", "out")
    with pytest.raises(InputError, match=r"option 'box' .* is not supported here") as error:
        extraction_request({"source1.il": "a.tif", "source1.patchsizex": 8, "source1.patchsizey": 8,
                            "source1.out": "p.tif?&box=0:0:8:8", "vec": "p.gpkg"})
    assert error.value.parameter == "source1.out"
    assert not (tmp_path / "out.tif").exists()


def test_extended_filename_parsing():
    parsed = parse_extended_filename("/d/o.tif?&gdal:co:compress=deflate&gdal:co:ZLEVEL=6&box=3:4:5:6&writegeom=false",
                                     "out")
    assert parsed.path == "/d/o.tif"
    assert parsed.creation_options == ("COMPRESS=deflate", "ZLEVEL=6")
    assert parsed.box == Window(3, 4, 5, 6)
    assert parse_extended_filename("plain.tif", "out").creation_options == ()


def test_engine_errors_name_the_otbtf_keys(spot6, tmp_path):
    params = {**seed_dict(spot6, str(tmp_path / "out.tif")), "output.names": ["nope"]}
    with pytest.raises(InputError) as error:
        TensorflowModelServe(params)
    assert error.value.parameter == "output.names"
    assert "'nope' is not an output of the model's signature" in error.value.message
    params = {**seed_dict(spot6, str(tmp_path / "out.tif")), "model.dir": str(tmp_path)}
    with pytest.raises(ModelError) as model_error:
        TensorflowModelServe(params)
    assert model_error.value.parameter == "model.dir"
    # a receptive field too small for the expression field: our RFIELDS/EFIELD become OTBTF's keys
    params = {**seed_dict(spot6, str(tmp_path / "out.tif")), "source1.rfieldx": 16, "source1.rfieldy": 16}
    with pytest.raises(InputError) as error:
        TensorflowModelServe(params)
    assert error.value.parameter == "source1.rfieldx/rfieldy"
    assert "RFIELDS" not in error.value.message and "EFIELD" not in error.value.message
    assert not (tmp_path / "out.tif").exists()


def test_otbtf_defaults_and_value_forms():
    request = serve_request({"source1.il": "a.tif", "source1.rfieldx": "64", "model_dir": "m",
                             "model.userplaceholders": "is_training=false dropout=0.0",
                             "output.names": "a b", "optim.tilesizex": 100, "out": Path("o.tif")})
    config = request.config
    source = config.sources[0]
    assert source.paths == ("a.tif",)
    assert source.receptive_field == (64, 1)  # OTBTF's default 1 for the axis not given
    assert source.use_nodata is False  # OTBTF ignores the rasters' own nodata
    assert config.fully_convolutional is False and config.expression_field == ()
    assert config.output_names == ("a", "b") and config.user_placeholders == ("is_training=false", "dropout=0.0")
    assert config.tile_size == 100 and config.output_type == "float32" and config.output == "o.tif"
    assert request.box is None
    request = serve_request({"source1.il": ["a.tif", "b.tif"], "source1.nodata": "-9999", "source2.il": "c.tif",
                             "source2.placeholder": "lo", "model.dir": "m", "model.fullyconv": "on",
                             "output.efieldx": 8, "output.spcscale": "2", "output.bv": -1,
                             "optim.disabletiling": "on", "optim.tilesizex": 64, "model.tagsets": "serve",
                             "out": "o.tif"})
    config = request.config
    assert [s.paths for s in config.sources] == [("a.tif", "b.tif"), ("c.tif",)]
    assert config.sources[0].nodata == -9999.0 and config.sources[0].use_nodata
    assert config.sources[1].placeholder == "lo" and config.sources[1].receptive_field == ()
    assert config.expression_field == (8, 1) and config.spacing_scale == 2.0 and config.background == -1.0
    assert config.tile_size == 0 and config.fully_convolutional


@pytest.mark.parametrize(("params", "key", "message"), [
    ({"source1.il": "a.tif", "out": "o.tif"}, "model.dir", "model.dir is required"),
    ({"source1.il": "a.tif", "model.dir": "m"}, "out", "out is required"),
    ({"source2.il": "a.tif", "model.dir": "m", "out": "o.tif"}, "source1.il", "source1 is missing"),
    ({"source1.rfieldx": 8, "model.dir": "m", "out": "o.tif"}, "source1.il", "source1.il is required"),
    ({"source1.il": "a.tif", "source1.rfieldx": "big", "model.dir": "m", "out": "o.tif"}, "source1.rfieldx",
     "expected an integer"),
    ({"source1.il": "a.tif", "source1.rfieldx": 0, "model.dir": "m", "out": "o.tif"}, "source1.rfieldx",
     "expected a positive integer"),
    ({"source1.il": "a.tif", "model.fullyconv": "maybe", "model.dir": "m", "out": "o.tif"}, "model.fullyconv",
     "expected true or false \\(or on/off\\)"),
    ({"source1.il": "a.tif", "model.tagsets": "train", "model.dir": "m", "out": "o.tif"}, "model.tagsets",
     "only the 'serve' tag set"),
    ({"source1.il": [], "model.dir": "m", "out": "o.tif"}, "source1.il", "at least one image"),
    ({"source1.il": [3], "model.dir": "m", "out": "o.tif"}, "source1.il", "3 is not an image"),
    ({"source1.il": "a.tif", "model.userplaceholders": "dropout", "model.dir": "m", "out": "o.tif"},
     "model.userplaceholders", "'dropout' is not 'name=value'"),
])
def test_bad_serve_parameters(params, key, message):
    with pytest.raises(InputError, match=message) as error:
        serve_request(params)
    assert error.value.parameter == key


def test_command_line_reading():
    params = parse_command_line("TensorflowModelServe", [
        "-source1.il", "a.tif", "b.tif", "-source1.nodata", "-9999", "-model.fullyconv", "-output.names", "x", "y",
        "-out", "o.tif?&box=0:0:4:4", "uint8", "-model.dir", "m"])
    assert params == {"source1.il": ["a.tif", "b.tif"], "source1.nodata": "-9999", "model.fullyconv": True,
                      "output.names": ["x", "y"], "out": ["o.tif?&box=0:0:4:4", "uint8"], "model.dir": "m"}
    request = serve_request(params)
    assert request.config.output_type == "uint8" and request.box == Window(0, 0, 4, 4)
    assert request.config.sources[0].nodata == -9999.0
    with pytest.raises(InputError, match=r"'a.tif' comes before any -key"):
        parse_command_line("TensorflowModelServe", ["a.tif"])
    with pytest.raises(InputError, match=r"-model.dir is given twice"):
        parse_command_line("TensorflowModelServe", ["-model.dir", "a", "-model.dir", "b"])
    with pytest.raises(InputError, match=r"-model.dir takes one value, got 2"):
        parse_command_line("TensorflowModelServe", ["-model.dir", "a", "b"])
    with pytest.raises(InputError, match="-out takes a file name and optionally a pixel type, got 3"):
        parse_command_line("TensorflowModelServe", ["-out", "a", "float", "x"])
    with pytest.raises(InputError, match="'inxml' is not a parameter"):
        parse_command_line("PatchesExtraction", ["-inxml", "a.xml"])


def test_command_line_errors_and_help(tmp_path):
    done = subprocess.run([str(SCRIPTS / "otbcli_TensorflowModelServe"), "-source1.il", "a.tif", "-model.dir", "m",
                           "-out", f"{tmp_path / 'o.tif'}?&nodata=0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "ERROR (InputError) out: the extended file name option 'nodata'" in done.stderr
    done = subprocess.run([str(SCRIPTS / "otbcli_PatchesExtraction"), "-help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "-source<N>.patchsizex" in done.stdout and "-outlabels" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_several_sources_as_otbtf_keys(tmp_path):
    two_resolution_model(tmp_path / "model")
    rng = np.random.default_rng(4)
    hi = make_raster(tmp_path / "hi.tif", rng.normal(size=(80, 90, 1)).astype(np.float32),
                     geotransform=(1000.0, 1.0, 0.0, 2000.0, 0.0, -1.0))
    lo = make_raster(tmp_path / "lo.tif", rng.normal(size=(40, 45, 2)).astype(np.float32),
                     geotransform=(1000.0, 2.0, 0.0, 2000.0, 0.0, -2.0))
    TensorflowModelServe({"source1.il": str(hi), "source1.rfieldx": 19, "source1.rfieldy": 19,
                          "source1.placeholder": "hi", "source2.il": str(lo), "source2.rfieldx": 10,
                          "source2.rfieldy": 10, "source2.placeholder": "lo", "model.dir": str(tmp_path / "model"),
                          "model.fullyconv": True, "output.names": "out", "output.efieldx": 8, "output.efieldy": 8,
                          "output.spcscale": 2, "out": str(tmp_path / "compat.tif")})
    serve(ServeConfig((SourceConfig((str(hi),), (19,), "hi"), SourceConfig((str(lo),), (10,), "lo")),
                      str(tmp_path / "model"), str(tmp_path / "ref.tif"), ("out",), (8,), spacing_scale=2.0))
    np.testing.assert_array_equal(read(tmp_path / "compat.tif"), read(tmp_path / "ref.tif"))
    assert gdal.Open(str(tmp_path / "compat.tif")).GetGeoTransform() == gdal.Open(
        str(tmp_path / "ref.tif")).GetGeoTransform()


# ----------------------------------------------------------------------------------- extraction
@pytest.fixture
def extraction_case(tmp_path: Path) -> dict[str, Path]:
    xs = make_raster(tmp_path / "xs.tif", encoded_values(40, 50, 3, "uint16"))
    band_a = make_raster(tmp_path / "a.tif", encoded_values(40, 50, 1, "float32") + 0.25)
    band_b = make_raster(tmp_path / "b.tif", encoded_values(40, 50, 2, "float32") * 2)
    rng = np.random.default_rng(9)
    xy = [(500000.0 + c * 10.0, 4500000.0 - r * 10.0) for c, r in zip(rng.uniform(0, 50, 60), rng.uniform(0, 40, 60),
                                                                        strict=True)]
    points = write_points(tmp_path / "points.gpkg", xy, fields={"class": [int(v) for v in rng.integers(0, 4, 60)]})
    stacked = gdal.BuildVRT(str(tmp_path / "stacked.vrt"), [str(band_a), str(band_b)], separate=True)
    stacked.FlushCache()
    del stacked
    return {"xs": xs, "a": band_a, "b": band_b, "points": points, "stacked": tmp_path / "stacked.vrt",
            "folder": tmp_path}


def test_patches_extraction_gives_the_patches_of_our_extraction(extraction_case):
    case = extraction_case
    out = case["folder"] / "otbtf"
    summary = PatchesExtraction({
        "source1.il": [str(case["xs"])], "source1.patchsizex": 8, "source1.patchsizey": 6,
        "source1.out": f"{out / 'xs_patches.tif'}?&gdal:co:COMPRESS=LZW",
        "source2.il": [str(case["a"]), str(case["b"])], "source2.patchsizex": 4, "source2.patchsizey": 4,
        "source2.out": [str(out / "ab_patches.tif"), "float"],
        "vec": str(case["points"]), "field": "class", "outlabels": str(out / "labels.tif")})
    # b.tif has two bands, a.tif one: the stacked source has three (the reference stacks with a VRT by GDAL,
    # whose -separate takes the first band of each file in GDAL 3.6: compare the first two bands)
    reference = patches_extraction(PatchesExtractionConfig(
        sources=(str(case["xs"]), str(case["stacked"])), points=str(case["points"]),
        output_dir=str(case["folder"] / "ours"), patch_sizes="8x6,4", class_field="class", nodata="none"))
    ours = case["folder"] / "ours"
    assert summary["n_samples"] == reference["n_samples"] > 20
    assert summary["rejected"] == reference["rejected"]
    xs_patches = gdal.Open(str(out / "xs_patches.tif"))
    assert gdal.GetDataTypeName(xs_patches.GetRasterBand(1).DataType) == "Float32"  # OTB's default pixel type
    assert xs_patches.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "LZW"
    np.testing.assert_array_equal(xs_patches.ReadAsArray(), read(ours / "xs_patches.tif").astype(np.float32))
    ab_patches = read(out / "ab_patches.tif")
    assert ab_patches.shape == (3, 4 * summary["n_samples"], 4)
    np.testing.assert_array_equal(ab_patches[:2], read(ours / "xs2_patches.tif"))
    np.testing.assert_array_equal(ab_patches[2], ab_patches[1] + 2)  # b's second band
    labels = gdal.Open(str(out / "labels.tif"))
    assert gdal.GetDataTypeName(labels.GetRasterBand(1).DataType) == "Byte"
    np.testing.assert_array_equal(labels.ReadAsArray(), read(ours / "labels.tif"))
    assert summary["files"] == {"source1.out": str(out / "xs_patches.tif"), "source2.out": str(out / "ab_patches.tif"),
                                "outlabels": str(out / "labels.tif")}
    assert sorted(p.name for p in out.iterdir()) == ["ab_patches.tif", "labels.tif", "xs_patches.tif"]


def test_patches_extraction_pixel_types_nodata_and_command_line(extraction_case):
    case = extraction_case
    out = case["folder"] / "cli"
    done = subprocess.run([str(SCRIPTS / "otbcli_PatchesExtraction"), "-source1.il", str(case["xs"]),
                           "-source1.patchsizex", "5", "-source1.patchsizey", "5", "-source1.nodata", "1230",
                           "-source1.out", str(out / "xs.tif"), "uint16", "-vec", str(case["points"])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    reference = patches_extraction(PatchesExtractionConfig(
        sources=(str(case["xs"]),), points=str(case["points"]), output_dir=str(case["folder"] / "ours"),
        patch_sizes="5", nodata="1230"))
    assert summary["n_samples"] == reference["n_samples"] and summary["rejected"] == reference["rejected"]
    assert summary["rejected"]["nodata"] > 0  # pixel (1, 23) band 0 holds 1230
    patches = gdal.Open(str(out / "xs.tif"))
    assert gdal.GetDataTypeName(patches.GetRasterBand(1).DataType) == "UInt16"
    np.testing.assert_array_equal(patches.ReadAsArray(), read(case["folder"] / "ours" / "xs_patches.tif"))
    assert sorted(p.name for p in out.iterdir()) == ["xs.tif"]


def test_patches_extraction_errors(extraction_case):
    case = extraction_case
    base = {"source1.il": str(case["xs"]), "source1.patchsizex": 5, "source1.patchsizey": 5,
            "source1.out": str(case["folder"] / "p.tif"), "vec": str(case["points"])}
    with pytest.raises(InputError, match=r"source1.patchsizey is required") as error:
        PatchesExtraction({k: v for k, v in base.items() if k != "source1.patchsizey"})
    assert error.value.parameter == "source1.patchsizey"
    with pytest.raises(InputError, match="outlabels needs the class field"):
        PatchesExtraction({**base, "outlabels": str(case["folder"] / "l.tif")})
    points = write_points(case["folder"] / "big.gpkg", [(500205.0, 4499795.0), (500305.0, 4499695.0)],
                          fields={"class": [300, 303]})
    with pytest.raises(InputError, match=r"class values 300..303 do not fit in uint8") as error:
        PatchesExtraction({**base, "vec": str(points), "field": "class", "outlabels": str(case["folder"] / "l.tif")})
    assert error.value.parameter == "outlabels"
    PatchesExtraction({**base, "vec": str(points), "field": "class",
                       "outlabels": [str(case["folder"] / "l.tif"), "uint16"]})
    np.testing.assert_array_equal(read(case["folder"] / "l.tif"), [[300], [303]])
    (case["folder"] / "l.tif").unlink()
    (case["folder"] / "p.tif").unlink()
    with pytest.raises(InputError, match="the layer of vec has no field 'nope'") as error:
        PatchesExtraction({**base, "field": "nope", "outlabels": str(case["folder"] / "l.tif")})
    assert error.value.parameter == "field"
    with pytest.raises(InputError, match="must have the same size"):
        small = make_raster(case["folder"] / "small.tif", encoded_values(10, 10, 1))
        PatchesExtraction({**base, "source1.il": [str(case["xs"]), str(small)]})
    assert not (case["folder"] / "p.tif").exists() and not (case["folder"] / "l.tif").exists()
    assert not list(case["folder"].glob(".otbtf-pyotb-*"))
