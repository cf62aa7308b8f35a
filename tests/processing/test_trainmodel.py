"""``otbtf:trainmodel``: its parameters → job config (in process), and real runs through qgis_process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingContext, QgsProcessingException

from otbtf_qgis.core.jobs.configs.trainmodel import TrainModelConfig
from tests.core.training_data import make_samples, write_patches_folder
from tests.processing.conftest import algorithm, build_config, qgis_process


def test_config_defaults(qgis_app, tmp_path: Path):
    config = build_config("trainmodel", TRAIN_DATA=tmp_path / "train", OUTPUT_MODEL=tmp_path / "model")
    assert config == TrainModelConfig(
        train_data=str(tmp_path / "train"), output_model=str(tmp_path / "model"), valid_data="", test_data="",
        n_classes=0, epochs=10, batch_size=8, learning_rate=0.0001, ignore_label=None, seed=None, model_file="",
        class_name="", resume=False, augment=False, mix=False)
    assert config == TrainModelConfig(train_data=str(tmp_path / "train"), output_model=str(tmp_path / "model"))


def test_config_every_value(qgis_app, tmp_path: Path):
    config = build_config("trainmodel", TRAIN_DATA=tmp_path / "train", VALID_DATA=tmp_path / "valid",
                          TEST_DATA=tmp_path / "test", N_CLASSES=3, EPOCHS=2, BATCH_SIZE=4, LEARNING_RATE=0.01,
                          IGNORE_LABEL=255, SEED=0, MODEL_FILE=tmp_path / "my_model.py", CLASS_NAME="MyModel",
                          RESUME=True, AUGMENT=True, MIX=True, OUTPUT_MODEL=tmp_path / "model")
    assert config == TrainModelConfig(
        train_data=str(tmp_path / "train"), output_model=str(tmp_path / "model"), valid_data=str(tmp_path / "valid"),
        test_data=str(tmp_path / "test"), n_classes=3, epochs=2, batch_size=4, learning_rate=0.01, ignore_label=255,
        seed=0, model_file=str(tmp_path / "my_model.py"), class_name="MyModel", resume=True, augment=True, mix=True)


@pytest.mark.parametrize("value, expected", [(None, None), ("", None), (" ", None), (0, 0), ("7", 7), (255, 255)])
def test_config_optional_integers_left_empty_are_none(qgis_app, tmp_path: Path, value, expected):
    params = {"TRAIN_DATA": tmp_path, "OUTPUT_MODEL": tmp_path / "model"}
    if value is not None:
        params.update(IGNORE_LABEL=value, SEED=value)
    config = build_config("trainmodel", **params)
    assert (config.ignore_label, config.seed) == (expected, expected)


def test_config_bad_values(qgis_app, tmp_path: Path):
    with pytest.raises(QgsProcessingException, match=r"^TRAIN_DATA: give the training data folder"):
        build_config("trainmodel", OUTPUT_MODEL=tmp_path / "model")
    alg = algorithm("trainmodel")
    base = {"TRAIN_DATA": str(tmp_path), "OUTPUT_MODEL": str(tmp_path / "model")}
    for key, value in (("EPOCHS", 0), ("BATCH_SIZE", 0), ("N_CLASSES", -1), ("LEARNING_RATE", -1.0),
                       ("MODEL_FILE", str(tmp_path / "model.txt"))):
        ok, message = alg.checkParameterValues({**base, key: value}, QgsProcessingContext())
        assert not ok and key in message, key


def test_trainmodel_writes_the_model_and_reports_metrics(trained_model: tuple[Path, dict]):
    output, result = trained_model
    outputs = result["results"]
    assert outputs["OUTPUT_MODEL"] == str(output)
    metrics = json.loads(outputs["METRICS"])
    assert {"loss", "accuracy", "precision", "recall", "val_loss", "val_accuracy"} <= set(metrics)
    assert 0.0 <= metrics["val_accuracy"] <= 1.0
    assert json.loads(outputs["SERVING"]) == {"output_name": "predictions_softmax_tensor_crop16",
                                              "receptive_field": [64, 64], "expression_field": [32, 32]}
    assert (output / "saved_model.pb").is_file()
    description = json.loads((output / "otbtf_model.json").read_text())
    assert description["class_names"] == ["water", "land"]
    assert json.loads(Path(outputs["HISTORY"]).read_text())["epoch"] == [1, 2]
    assert Path(outputs["TENSORBOARD"]).is_dir()
    assert outputs["TRAINING_FOLDER"] == str(output) + "_training"
    assert (Path(outputs["TRAINING_FOLDER"]) / "state.json").is_file()


def test_trainmodel_reports_bad_labels_and_publishes_nothing(training_folders: dict[str, Path], dev_profile: Path):
    images, labels = make_samples(8, 64, 2, seed=3)
    labels[0, 0, 0, 0] = 7
    folder = write_patches_folder(training_folders["root"] / "bad", images, labels.astype(np.uint8),
                                  class_names=("water", "land"))
    output = training_folders["root"] / "bad_model"
    done = qgis_process(["run", "otbtf:trainmodel", "--", f"TRAIN_DATA={folder}", "EPOCHS=1", "BATCH_SIZE=4",
                         f"OUTPUT_MODEL={output}"], dev_profile)
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert "TRAIN_DATA: a label has the value 7, but labels must be 0 to 1 (N_CLASSES = 2)" in text
    assert not output.exists()


def test_trains_on_the_output_of_patches_extraction(run_in_process, tmp_path: Path):
    """The whole chain in QGIS: selection with polygon labels → extraction (xs + labels) → training."""
    from tests.processing.sampling_data import make_image, make_polygons

    image = make_image(tmp_path / "image.tif")
    run_in_process("patchesselection", INPUT=image, PATCH_SIZE=16, STEP=8, STRATEGY="all",
                   POLYGONS=make_polygons(tmp_path / "polygons.gpkg"), CLASS_FIELD="landcover",
                   OUTPUT_TRAIN=tmp_path / "train.gpkg", OUTPUT_LABELS=tmp_path / "labels.tif")
    run_in_process("patchesextraction", SOURCES=[image, tmp_path / "labels.tif"], PATCH_SIZES="16",
                   SOURCE_NAMES="xs,labels", POINTS=tmp_path / "train.gpkg", FIELD="landcover",
                   OUTPUT_DIR=tmp_path / "patches")
    result = run_in_process("trainmodel", TRAIN_DATA=tmp_path / "patches", EPOCHS=1, BATCH_SIZE=10, SEED=0,
                            OUTPUT_MODEL=tmp_path / "model")
    description = json.loads((tmp_path / "model" / "otbtf_model.json").read_text())
    assert description["inputs"] == {"input_xs": {"bands": 3, "dtype": "uint16", "patch_size": [16, 16]}}
    assert description["class_names"] == ["crop", "water"] and description["n_classes"] == 2
    assert description["training"]["label_key"] == "labels" and description["training"]["ignore_label"] == 255
    assert set(json.loads(result["METRICS"])) == {"loss", "accuracy", "precision", "recall"}
