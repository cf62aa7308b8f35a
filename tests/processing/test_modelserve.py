"""``otbtf:modelserve``: its parameters → serving config (in process), and real runs through qgis_process on a
synthetic raster and a small Keras model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsApplication, QgsProcessingException, QgsRasterLayer

from otbtf_qgis.core.jobs.configs.modelserve import ServeConfig, SourceConfig
from otbtf_qgis.processing.provider import OtbtfProvider
from tests.processing.conftest import ROOT, build_config, qgis_process

# TensorFlow must not be imported in this (QGIS) process: the model and the reference
# prediction are made by a separate Python.
BUILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from tests.core import saved_models as models
    folder = Path(sys.argv[1])
    model = models.valid_model(folder / "model")
    data = np.load(folder / "image.npy")
    scores = np.asarray(model({"input_xs": data[None]})["scores"])[0]
    np.save(folder / "expected.npy", scores)
""")


@pytest.fixture(scope="module")
def served_case(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("modelserve")
    data = np.random.default_rng(11).normal(size=(45, 70, 3)).astype(np.float32)
    np.save(folder / "image.npy", data)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    dataset = gdal.GetDriverByName("GTiff").Create(str(folder / "image.tif"), 70, 45, 3, gdal.GDT_Float32)
    dataset.SetGeoTransform((300000.0, 5.0, 0.0, 5000000.0, 0.0, -5.0))
    dataset.SetProjection(srs.ExportToWkt())
    for band in range(3):
        dataset.GetRasterBand(band + 1).WriteArray(data[:, :, band])
    dataset = None
    subprocess.run([sys.executable, "-c", BUILD, str(folder)], cwd=ROOT, check=True, capture_output=True)
    return folder


def test_modelserve_is_listed_with_its_parameters(qgis_app):
    provider = OtbtfProvider()
    assert QgsApplication.processingRegistry().addProvider(provider)
    try:
        algorithm = QgsApplication.processingRegistry().algorithmById("otbtf:modelserve")
        names = [p.name() for p in algorithm.parameterDefinitions()]
        assert names == ["SOURCES", "MODEL", "RFIELDS", "OUTPUT_NAMES", "EFIELD", "OUTPUT", "OUTPUT_CLASSES",
                         "PLACEHOLDERS", "FULLYCONV", "SPCSCALE", "TILE_SIZE", "NODATA", "BACKGROUND",
                         "USER_PLACEHOLDERS", "OUTPUT_TYPE", "CREATION_OPTIONS", "COG", "SCHEDULER"]
        assert sorted(o.name() for o in algorithm.outputDefinitions()) == ["OUTPUT", "OUTPUT_CLASSES"]
        assert algorithm.groupId() == "inference"
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)


def test_config_defaults_come_from_the_model(qgis_app, layers_folder: Path, tmp_path: Path):
    config = build_config("modelserve", SOURCES=[layers_folder / "image.tif"], MODEL=tmp_path / "model",
                          OUTPUT=tmp_path / "out.tif")
    assert config == ServeConfig(
        sources=(SourceConfig(paths=(str(layers_folder / "image.tif"),), receptive_field=(), placeholder="",
                              nodata=None, use_nodata=True),),
        model=str(tmp_path / "model"), output=str(tmp_path / "out.tif"), output_names=(), expression_field=(),
        fully_convolutional=True, spacing_scale=1.0, tile_size=0, background=0.0, user_placeholders=(),
        output_type="float32", creation_options=(), cog=False, output_classes="")
    assert config == ServeConfig(sources=(SourceConfig((str(layers_folder / "image.tif"),)),),
                                 model=str(tmp_path / "model"), output=str(tmp_path / "out.tif"))


def test_config_every_value(project_context, layers_folder: Path, tmp_path: Path):
    config = build_config(
        "modelserve", project_context, SOURCES=["image", "mask"], MODEL=tmp_path / "model", RFIELDS="64; 32x16",
        PLACEHOLDERS="x1,x2", NODATA="0;none", OUTPUT_NAMES="a;\nb", EFIELD="32x16", FULLYCONV=False, SPCSCALE=2,
        TILE_SIZE=128, BACKGROUND=-1, USER_PLACEHOLDERS="dropout=0.0, is_training=false", OUTPUT_TYPE=2,
        CREATION_OPTIONS="COMPRESS=LZW;PREDICTOR=2", COG=True, OUTPUT=tmp_path / "out.tif",
        OUTPUT_CLASSES=tmp_path / "classes.tif")
    assert config == ServeConfig(
        sources=(SourceConfig((str(layers_folder / "image.tif"),), (64, 64), "x1", 0.0, True),
                 SourceConfig((str(layers_folder / "mask.tif"),), (32, 16), "x2", None, False)),
        model=str(tmp_path / "model"), output=str(tmp_path / "out.tif"), output_names=("a", "b"),
        expression_field=(32, 16), fully_convolutional=False, spacing_scale=2.0, tile_size=128, background=-1.0,
        user_placeholders=("dropout=0.0", "is_training=false"), output_type="uint8",
        creation_options=("COMPRESS=LZW", "PREDICTOR=2"), cog=True, output_classes=str(tmp_path / "classes.tif"))


def test_config_one_value_for_every_source_and_empty_entries(qgis_app, layers_folder: Path, tmp_path: Path):
    sources = [layers_folder / "image.tif", layers_folder / "mask.tif"]
    config = build_config("modelserve", SOURCES=sources, MODEL=tmp_path, OUTPUT=tmp_path / "out.tif", RFIELDS="14",
                          NODATA="-9999", PLACEHOLDERS=";x2")
    assert [(s.receptive_field, s.nodata, s.use_nodata, s.placeholder) for s in config.sources] == [
        ((14, 14), -9999.0, True, ""), ((14, 14), -9999.0, True, "x2")]
    config = build_config("modelserve", SOURCES=sources, MODEL=tmp_path, OUTPUT=tmp_path / "out.tif", RFIELDS=";14",
                          NODATA="none;")
    assert [(s.receptive_field, s.nodata, s.use_nodata) for s in config.sources] == [
        ((), None, False), ((14, 14), None, True)]


@pytest.mark.parametrize("params, message", [
    ({"RFIELDS": "14;14"}, r"RFIELDS: '14;14' gives 2 value\(s\) for 1 source\(s\)"),
    ({"RFIELDS": "14 14"}, "RFIELDS: '14 14' is not a size"),  # spaces do not separate
    ({"PLACEHOLDERS": "x1;x2"}, r"PLACEHOLDERS: 'x1;x2' gives 2 value\(s\) for 1 source\(s\)"),
    ({"NODATA": "auto"}, "NODATA: 'auto' is not a nodata value"),
    ({"EFIELD": "abc"}, "EFIELD: 'abc' is not a size"),
    ({"USER_PLACEHOLDERS": "dropout"}, "USER_PLACEHOLDERS: 'dropout' is not 'name=value'"),
    ({"CREATION_OPTIONS": "COMPRESS LZW"}, "CREATION_OPTIONS: 'COMPRESS LZW' is not KEY=VALUE"),
    ({"OUTPUT": "out.png"}, "OUTPUT: 'out.png' must be a GeoTIFF file"),
    ({"OUTPUT_CLASSES": "classes.jpg"}, "OUTPUT_CLASSES: 'classes.jpg' must be a GeoTIFF file"),
    ({"OUTPUT_CLASSES": "out.tif"}, "OUTPUT_CLASSES: the class map must be a different file from OUTPUT"),
    ({"SOURCES": []}, "SOURCES: give at least one raster"),
])
def test_config_bad_values_name_the_parameter(qgis_app, layers_folder: Path, params, message):
    params = {"SOURCES": [layers_folder / "image.tif"], "MODEL": "model", "OUTPUT": "out.tif", **params}
    with pytest.raises(QgsProcessingException, match=f"^{message}"):
        build_config("modelserve", **params)


def test_config_scheduler(qgis_app, layers_folder: Path, tmp_path: Path):
    params = {"SOURCES": [layers_folder / "image.tif"], "MODEL": tmp_path, "OUTPUT": tmp_path / "out.tif"}
    assert build_config("modelserve", **params).scheduler == ""
    assert build_config("modelserve", SCHEDULER=" local:2 ", **params).scheduler == "local:2"
    assert build_config("modelserve", SCHEDULER="tcp://10.0.0.5:8786", **params).scheduler == "tcp://10.0.0.5:8786"
    with pytest.raises(QgsProcessingException, match=r"^SCHEDULER: 'local:0' starts no worker: give local:N"):
        build_config("modelserve", SCHEDULER="local:0", **params)


def test_modelserve_with_defaults_from_the_model(run_alg, served_case, tmp_path, qgis_app):
    output = tmp_path / "scores.tif"
    classes = tmp_path / "classes.tif"
    result = run_alg("modelserve", SOURCES=str(served_case / "image.tif"), MODEL=str(served_case / "model"),
                     TILE_SIZE=16, OUTPUT=str(output), OUTPUT_CLASSES=str(classes))
    assert result["results"]["OUTPUT"] == str(output)
    dataset = gdal.Open(str(output))
    # rf 14, ef 8: 70 - 14 + 8 = 64 columns, 45 - 14 + 8 = 39 -> 32 rows, from input pixel 3
    assert (dataset.RasterXSize, dataset.RasterYSize, dataset.RasterCount) == (64, 32, 3)
    assert dataset.GetGeoTransform() == (300015.0, 5.0, 0.0, 4999985.0, 0.0, -5.0)
    srs = osr.SpatialReference(dataset.GetProjection())
    assert srs.GetAuthorityCode(None) == "32631"
    expected = np.load(served_case / "expected.npy")[:32, :64]
    np.testing.assert_allclose(dataset.ReadAsArray(interleave="pixel"), expected, atol=1e-6)
    # the class map loads paletted, with the model's class names
    layer = QgsRasterLayer(str(classes), "classes")
    assert layer.isValid() and layer.renderer().type() == "paletted"
    assert [c.label for c in layer.renderer().classes()][:3] == ["water", "crop", "tree"]
    np.testing.assert_array_equal(gdal.Open(str(classes)).ReadAsArray(), np.argmax(expected, axis=2))


def test_modelserve_on_a_local_dask_cluster_gives_the_same_outputs(run_alg, served_case, tmp_path, qgis_app):
    outputs = {}
    for scheduler in ("", "local:2"):
        name = scheduler.replace(":", "") or "plain"
        result = run_alg("modelserve", SOURCES=str(served_case / "image.tif"), MODEL=str(served_case / "model"),
                         TILE_SIZE=16, SCHEDULER=scheduler, OUTPUT=str(tmp_path / f"{name}.tif"),
                         OUTPUT_CLASSES=str(tmp_path / f"{name}_classes.tif"))
        assert result["results"]["OUTPUT"] == str(tmp_path / f"{name}.tif")
        outputs[name] = [gdal.Open(str(tmp_path / f"{name}{kind}.tif")) for kind in ("", "_classes")]
    for plain, distributed in zip(outputs["plain"], outputs["local2"], strict=True):
        np.testing.assert_array_equal(distributed.ReadAsArray(), plain.ReadAsArray())
        assert distributed.GetGeoTransform() == plain.GetGeoTransform()
        assert distributed.GetProjection() == plain.GetProjection()
        assert distributed.GetMetadata() == plain.GetMetadata()
    band, plain_band = outputs["local2"][1].GetRasterBand(1), outputs["plain"][1].GetRasterBand(1)
    assert band.GetRasterCategoryNames() == plain_band.GetRasterCategoryNames() == ["water", "crop", "tree"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_modelserve_bad_model_fails_clearly_without_output(dev_profile, served_case, tmp_path):
    (tmp_path / "not_a_model").mkdir()
    output = tmp_path / "out.tif"
    done = qgis_process(["run", "otbtf:modelserve", "--", f"SOURCES={served_case / 'image.tif'}",
                         f"MODEL={tmp_path / 'not_a_model'}", f"OUTPUT={output}"], dev_profile)
    assert done.returncode != 0
    assert "MODEL: " in done.stdout + done.stderr and "is not a SavedModel" in done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_model"]
