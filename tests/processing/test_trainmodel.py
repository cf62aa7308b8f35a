"""otbtf:trainmodel through the real qgis_process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.core.training_data import make_samples, write_patches_folder

from .conftest import qgis_process


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


def test_trains_on_the_output_of_patches_extraction(run_alg, tmp_path: Path):
    """The whole chain headless: selection with polygon labels → extraction (xs + labels) → training."""
    from .sampling_data import make_image, make_polygons

    image = make_image(tmp_path / "image.tif")
    run_alg("patchesselection", INPUT=image, PATCH_SIZE=16, STEP=8, STRATEGY="all",
            POLYGONS=make_polygons(tmp_path / "polygons.gpkg"), CLASS_FIELD="landcover",
            OUTPUT_TRAIN=tmp_path / "train.gpkg", OUTPUT_LABELS=tmp_path / "labels.tif")
    run_alg("patchesextraction", SOURCES=[image, tmp_path / "labels.tif"], PATCH_SIZES="16",
            SOURCE_NAMES="xs,labels", POINTS=tmp_path / "train.gpkg", FIELD="landcover",
            OUTPUT_DIR=tmp_path / "patches")
    result = run_alg("trainmodel", TRAIN_DATA=tmp_path / "patches", EPOCHS=1, BATCH_SIZE=10, SEED=0,
                     OUTPUT_MODEL=tmp_path / "model")["results"]
    description = json.loads((tmp_path / "model" / "otbtf_model.json").read_text())
    assert description["inputs"] == {"input_xs": {"bands": 3, "dtype": "uint16", "patch_size": [16, 16]}}
    assert description["class_names"] == ["crop", "water"] and description["n_classes"] == 2
    assert description["training"]["label_key"] == "labels" and description["training"]["ignore_label"] == 255
    assert set(json.loads(result["METRICS"])) == {"loss", "accuracy", "precision", "recall"}
