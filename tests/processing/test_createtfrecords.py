"""``otbtf:createtfrecords``: its parameters → job config (in process), and real runs through qgis_process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qgis.core import QgsProcessingContext, QgsProcessingException

from otbtf_qgis.core.jobs.configs.createtfrecords import CreateTFRecordsConfig
from tests.processing.conftest import algorithm, build_config
from tests.processing.sampling_data import make_image, manifest


def test_config_defaults(qgis_app, tmp_path: Path):
    config = build_config("createtfrecords", INPUT=[tmp_path / "train"], OUTPUT_DIR=tmp_path / "tfrecords")
    assert config == CreateTFRecordsConfig(inputs=(str(tmp_path / "train"),), output_dir=str(tmp_path / "tfrecords"),
                                           n_samples_per_shard=100, shuffle=True, seed=0, drop_remainder=False)
    assert config == CreateTFRecordsConfig(inputs=(str(tmp_path / "train"),), output_dir=str(tmp_path / "tfrecords"))


def test_config_every_value(qgis_app, tmp_path: Path):
    inputs = [tmp_path / "train", tmp_path / "valid" / "manifest.json"]
    config = build_config("createtfrecords", INPUT=inputs, N_SAMPLES_PER_SHARD=10, SHUFFLE=False, SEED=3,
                          DROP_REMAINDER=True, OUTPUT_DIR=tmp_path / "tfrecords")
    assert config == CreateTFRecordsConfig(inputs=tuple(str(p) for p in inputs), output_dir=str(tmp_path / "tfrecords"),
                                           n_samples_per_shard=10, shuffle=False, seed=3, drop_remainder=True)


def test_config_bad_values(qgis_app, tmp_path: Path):
    with pytest.raises(QgsProcessingException, match=r"^INPUT: give at least one patches folder"):
        build_config("createtfrecords", INPUT=[], OUTPUT_DIR=tmp_path / "tfrecords")
    ok, message = algorithm("createtfrecords").checkParameterValues(
        {"INPUT": [str(tmp_path)], "N_SAMPLES_PER_SHARD": 0, "OUTPUT_DIR": str(tmp_path / "out")},
        QgsProcessingContext())
    assert not ok and "N_SAMPLES_PER_SHARD" in message


def test_train_and_valid_folders_to_tfrecords(dev_profile, run_alg, run_in_process, tmp_path: Path):
    image = make_image(tmp_path / "image.tif")
    counts = run_in_process("patchesselection", INPUT=image, PATCH_SIZE=8, STRATEGY="chessboard",
                            OUTPUT_TRAIN=tmp_path / "train.gpkg", OUTPUT_VALID=tmp_path / "valid.gpkg")
    for name in ("train", "valid"):
        run_in_process("patchesextraction", SOURCES=[image], PATCH_SIZES="8", POINTS=tmp_path / f"{name}.gpkg",
                       OUTPUT_DIR=tmp_path / "patches" / name)
    result = run_alg("createtfrecords", INPUT=[tmp_path / "patches" / "train", tmp_path / "patches" / "valid"],
                     N_SAMPLES_PER_SHARD=10, OUTPUT_DIR=tmp_path / "tfrecords")["results"]
    # 10 x 8 positions minus the one holding the nodata corner, split on alternating cells.
    assert counts["N_TRAIN"] + counts["N_VALID"] == 79
    assert result["N_SAMPLES"] == 79 and result["OUTPUT_DIR"] == str(tmp_path / "tfrecords")
    for name, key in (("train", "N_TRAIN"), ("valid", "N_VALID")):
        folder = tmp_path / "tfrecords" / name
        assert manifest(folder)["n_samples"] == counts[key]
        assert len(list(folder.glob("*.records"))) == -(-counts[key] // 10)
        assert json.loads((folder / "output_shapes.json").read_text()) == {"xs": [8, 8, 3]}
        assert json.loads((folder / "output_types.json").read_text()) == {"xs": "uint16"}


def test_a_graphical_model_chains_extraction_into_tfrecords(dev_profile, qgis_app, tmp_path: Path):
    """The extraction's MANIFEST output (a file output) feeds createtfrecords' INPUT in a model."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterRasterLayer,
    )

    from tests.processing.conftest import run_json
    from tests.vector_data import write_points

    model = QgsProcessingModelAlgorithm("chain", "tests")
    model.addModelParameter(QgsProcessingParameterRasterLayer("image", "image"), QgsProcessingModelParameter("image"))
    model.addModelParameter(QgsProcessingParameterFeatureSource("points", "points"),
                            QgsProcessingModelParameter("points"))
    extract = QgsProcessingModelChildAlgorithm("otbtf:patchesextraction")
    extract.setChildId("extract")
    extract.addParameterSources("SOURCES", [QgsProcessingModelChildParameterSource.fromModelParameter("image")])
    extract.addParameterSources("POINTS", [QgsProcessingModelChildParameterSource.fromModelParameter("points")])
    extract.addParameterSources("PATCH_SIZES", [QgsProcessingModelChildParameterSource.fromStaticValue("8")])
    model.addChildAlgorithm(extract)
    convert = QgsProcessingModelChildAlgorithm("otbtf:createtfrecords")
    convert.setChildId("convert")
    convert.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("extract",
                                                                                               "MANIFEST")])
    convert.addParameterSources("N_SAMPLES_PER_SHARD", [QgsProcessingModelChildParameterSource.fromStaticValue(2)])
    output = QgsProcessingModelOutput("tfrecords", "TFRecords")
    output.setChildId("convert")
    output.setChildOutputName("OUTPUT_DIR")
    convert.setModelOutputs({"tfrecords": output})
    convert.setDependencies([])
    model.addChildAlgorithm(convert)
    path = tmp_path / "chain.model3"
    assert model.toFile(str(path))
    image = make_image(tmp_path / "image.tif")
    points = write_points(tmp_path / "points.gpkg", [(500205.0, 4499795.0), (500405.0, 4499595.0),
                                                     (500605.0, 4499695.0)])
    result = run_json(["run", str(path), "--", f"image={image}", f"points={points}",
                       f"convert:tfrecords={tmp_path / 'tfrecords'}"], dev_profile)
    assert manifest(tmp_path / "tfrecords")["n_samples"] == 3
    assert sorted(p.name for p in (tmp_path / "tfrecords").glob("*.records")) == ["0.records", "1.records"]
    assert result["results"]
