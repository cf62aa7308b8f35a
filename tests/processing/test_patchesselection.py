"""``otbtf:patchesselection`` through the real qgis_process, and its declaration in QGIS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from osgeo import gdal
from qgis.core import QgsApplication

from otbtf_qgis.processing.provider import OtbtfProvider

from .conftest import qgis_process
from .sampling_data import feature_count, make_image, make_polygons


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
                             "N_TRAIN": "outputNumber", "N_VALID": "outputNumber", "N_TEST": "outputNumber"},
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
