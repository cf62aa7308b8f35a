"""``otbtf:patchesselection``: its declaration in QGIS, its parameters → job config (in process), and real runs
through qgis_process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException

from otbtf_qgis.core.jobs.configs.patchesselection import PatchesSelectionConfig
from otbtf_qgis.processing.provider import OtbtfProvider
from tests.processing.conftest import algorithm, build_config, qgis_process
from tests.processing.sampling_data import feature_count, make_image, make_polygons


@pytest.fixture
def algorithms(qgis_app):
    provider = OtbtfProvider()
    assert QgsApplication.processingRegistry().addProvider(provider)
    yield {alg.name(): alg for alg in provider.algorithms()}
    QgsApplication.processingRegistry().removeProvider(provider)


def test_destinations_are_outputs_the_modeler_can_chain(algorithms):
    expected = {
        "patchesselection": {"OUTPUT_TRAIN": "outputVector", "OUTPUT_VALID": "outputVector",
                             "OUTPUT_TEST": "outputVector", "OUTPUT_LABELS": "outputRaster",
                             "OUTPUT_VALID_LABELS": "outputRaster", "OUTPUT_TEST_LABELS": "outputRaster",
                             "OUTPUT_POLYGONS": "outputVector", "N_TRAIN": "outputNumber", "N_VALID": "outputNumber",
                             "N_TEST": "outputNumber"},
        "patchesextraction": {"OUTPUT_DIR": "outputFolder", "N_SAMPLES": "outputNumber", "MANIFEST": "outputFile"},
        "createtfrecords": {"OUTPUT_DIR": "outputFolder", "N_SAMPLES": "outputNumber"},
    }
    for name, outputs in expected.items():
        algorithm = algorithms[name]
        assert {o.name(): o.type() for o in algorithm.outputDefinitions()} == outputs
        assert algorithm.group() == "Sampling" and algorithm.groupId() == "sampling"
    inputs = {p.name() for p in algorithms["patchesselection"].parameterDefinitions()}
    assert {"INPUT", "STEP", "PATCH_SIZE", "STRATEGY", "TRAIN_PROPORTION", "VALID_PROPORTION", "TEST_PROPORTION",
            "SEED", "POLYGONS", "CLASS_FIELD", "MASK", "NODATA", "OFFSET"} <= inputs
    assert "centre" in algorithms["patchesselection"].shortHelpString()
    assert "previous output" in algorithms["createtfrecords"].shortHelpString()


def test_config_defaults(qgis_app, layers_folder: Path, tmp_path: Path):
    config = build_config("patchesselection", INPUT=layers_folder / "image.tif", OUTPUT_TRAIN=tmp_path / "t.gpkg")
    assert config == PatchesSelectionConfig(
        input=str(layers_folder / "image.tif"), output_train=str(tmp_path / "t.gpkg"), patch_size="64", step="",
        offset="0", strategy="split", train_proportion=0.6, valid_proportion=0.2, test_proportion=0.2, seed=0,
        mask="", nodata=None, polygons="", class_field="", output_valid="", output_test="", output_labels="")
    # the dialog's defaults are the config's defaults
    assert config == PatchesSelectionConfig(input=str(layers_folder / "image.tif"),
                                            output_train=str(tmp_path / "t.gpkg"))


def test_config_from_project_layers_and_every_value(project_context, layers_folder: Path, tmp_path: Path):
    outputs = {key: tmp_path / name for key, name in (("OUTPUT_TRAIN", "train.gpkg"), ("OUTPUT_VALID", "valid.gpkg"),
                                                       ("OUTPUT_TEST", "test.shp"), ("OUTPUT_LABELS", "labels.tif"))}
    config = build_config("patchesselection", project_context, INPUT="image", MASK="mask", POLYGONS="polygons",
                          CLASS_FIELD="landcover", PATCH_SIZE="16x8", STEP=" 8 ", OFFSET="2x3", STRATEGY="chessboard",
                          TRAIN_PROPORTION=0.5, VALID_PROPORTION=0.3, TEST_PROPORTION=0.1, SEED=7, NODATA=-9999,
                          **outputs)
    assert config == PatchesSelectionConfig(
        input=str(layers_folder / "image.tif"), output_train=str(outputs["OUTPUT_TRAIN"]), patch_size="16x8",
        step=" 8 ", offset="2x3", strategy="chessboard", train_proportion=0.5, valid_proportion=0.3,
        test_proportion=0.1, seed=7, mask=str(layers_folder / "mask.tif"), nodata=-9999.0,
        polygons=str(layers_folder / "polygons.gpkg"), class_field="landcover",
        output_valid=str(outputs["OUTPUT_VALID"]), output_test=str(outputs["OUTPUT_TEST"]),
        output_labels=str(outputs["OUTPUT_LABELS"]))


@pytest.mark.parametrize("value, expected", [(None, None), ("", None), (0, 0.0), ("0", 0.0), (-1.5, -1.5)])
def test_config_nodata_left_out_is_the_rasters_own(qgis_app, layers_folder: Path, value, expected):
    params = {"INPUT": layers_folder / "image.tif", "OUTPUT_TRAIN": "t.gpkg"}
    if value is not None:
        params["NODATA"] = value
    assert build_config("patchesselection", **params).nodata == expected


def test_config_temporary_outputs_are_files_in_the_processing_folder(qgis_app, layers_folder: Path):
    config = build_config("patchesselection", INPUT=layers_folder / "image.tif", OUTPUT_TRAIN="TEMPORARY_OUTPUT",
                          OUTPUT_LABELS="TEMPORARY_OUTPUT")
    assert config.output_train.endswith(".gpkg") and config.output_labels.endswith(".tif")
    assert Path(config.output_train).parent.parent == Path(config.output_labels).parent.parent


@pytest.mark.parametrize("params, message", [
    ({"PATCH_SIZE": "abc"}, "PATCH_SIZE: 'abc' is not a size"),
    ({"PATCH_SIZE": "64 32"}, "PATCH_SIZE: '64 32' is not a size"),
    ({"PATCH_SIZE": "0"}, "PATCH_SIZE: '0' must be at least 1"),
    ({"STEP": "8x0"}, "STEP: '8x0' must be at least 1"),
    ({"OFFSET": "-1"}, "OFFSET: '-1' is not a size"),
    ({"INPUT": "missing.tif"}, "INPUT: 'missing.tif' is not a raster QGIS can open"),
    ({"MASK": "missing.tif"}, "MASK: 'missing.tif' is not a raster QGIS can open"),
    ({"POLYGONS": "missing.gpkg"}, "POLYGONS: 'missing.gpkg' is not a vector layer QGIS can open"),
])
def test_config_bad_values_name_the_parameter(qgis_app, layers_folder: Path, params, message):
    params = {"INPUT": layers_folder / "image.tif", "OUTPUT_TRAIN": "t.gpkg", **params}
    with pytest.raises(QgsProcessingException, match=f"^{message}"):
        build_config("patchesselection", **params)


def test_declared_ranges_are_checked_by_qgis(qgis_app, layers_folder: Path):
    alg = algorithm("patchesselection")
    base = {"INPUT": str(layers_folder / "image.tif"), "OUTPUT_TRAIN": "t.gpkg"}
    assert alg.checkParameterValues(base, QgsProcessingContext()) == (True, "")
    for key, value in (("TRAIN_PROPORTION", 1.5), ("VALID_PROPORTION", -0.1), ("STRATEGY", "random")):
        ok, message = alg.checkParameterValues({**base, key: value}, QgsProcessingContext())
        assert not ok and key in message


def test_selection_with_polygons_and_label_raster(dev_profile, run_alg, tmp_path: Path):
    image = make_image(tmp_path / "image.tif")
    polygons = make_polygons(tmp_path / "polygons.gpkg")
    result = run_alg("patchesselection", INPUT=image, PATCH_SIZE=16, STEP=8, STRATEGY="split", SEED=1,
                     TRAIN_PROPORTION=0.5, VALID_PROPORTION=0.25, TEST_PROPORTION=0.25, POLYGONS=polygons,
                     CLASS_FIELD="landcover", OUTPUT_TRAIN=tmp_path / "train.gpkg",
                     OUTPUT_VALID=tmp_path / "valid.gpkg", OUTPUT_TEST=tmp_path / "test.gpkg",
                     OUTPUT_LABELS=tmp_path / "labels.tif")["results"]
    # 9 x 7 grid positions; the one whose 16x16 patch holds the 8x8 nodata corner is rejected,
    # and the centres below the 'water' box and right of the 'crop' one are outside the polygons.
    counts = {name: feature_count(tmp_path / f"{name}.gpkg") for name in ("train", "valid", "test")}
    assert counts == {"train": result["N_TRAIN"], "valid": result["N_VALID"], "test": result["N_TEST"]}
    assert sum(counts.values()) == 63 - 1 - 12
    assert result["OUTPUT_TRAIN"] == str(tmp_path / "train.gpkg")
    labels = gdal.Open(result["OUTPUT_LABELS"])
    assert (labels.RasterXSize, labels.RasterYSize) == (80, 64)
    assert json.loads(labels.GetMetadataItem("OTBTF_CLASS_NAMES")) == ["crop", "water"]


def test_a_bad_layer_fails_with_the_parameter_name(dev_profile, tmp_path: Path):
    image = make_image(tmp_path / "image.tif")
    done = qgis_process(["run", "otbtf:patchesselection", "--", f"INPUT={image}", "PATCH_SIZE=200",
                         f"OUTPUT_TRAIN={tmp_path / 'train.gpkg'}", "STRATEGY=all"], dev_profile)
    assert done.returncode != 0
    assert "PATCH_SIZE: no 200x200 patch fits in INPUT (80x64 pixels)" in done.stdout + done.stderr
    assert not (tmp_path / "train.gpkg").exists()
