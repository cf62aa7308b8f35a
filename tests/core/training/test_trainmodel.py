"""Training: learning, resume and cancel, labels (ignore label, classes), custom models, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from otbtf_qgis.core.errors import CancelledError, DatasetError, InputError, ModelError
from otbtf_qgis.core.jobs.configs.trainmodel import TrainModelConfig, training_folder
from otbtf_qgis.core.models.custom import load_model_class
from otbtf_qgis.core.progress import Reporter
from otbtf_qgis.core.training.loop import batch_statistics, metrics_from_statistics
from otbtf_qgis.core.training.pipeline import bad_label_error, make_preprocessing_fn, plan_training_data
from otbtf_qgis.core.training.trainmodel import run
from tests.core.training_data import make_samples, write_patches_folder, write_tfrecords_folder


class Recorder(Reporter):
    """Keeps messages and progress; cancels once ``cancel_after`` appears in an info message."""

    def __init__(self, cancel_after: str | None = None) -> None:
        self.messages: list[str] = []
        self.fractions: list[float] = []
        self.cancel_after = cancel_after
        self.cancel = False

    def progress(self, fraction: float) -> None:
        self.fractions.append(fraction)

    def info(self, message: str) -> None:
        self.messages.append(message)
        if self.cancel_after and self.cancel_after in message:
            self.cancel = True

    def warning(self, message: str) -> None:
        self.messages.append("WARNING " + message)

    def is_canceled(self) -> bool:
        return self.cancel


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    result = {}
    for name, n, seed in (("train", 64, 1), ("valid", 32, 2)):
        images, labels = make_samples(n, 32, 3, seed=seed)
        result[name] = write_patches_folder(root / name, images, labels)
    return result


@pytest.fixture(scope="module")
def two_class_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two bands; the label of a pixel is its brighter band."""
    root = tmp_path_factory.mktemp("two")
    result = {}
    for name, n, seed in (("train", 48, 1), ("valid", 32, 2)):
        images, labels = make_samples(n, 32, 2, seed=seed)
        result[name] = write_patches_folder(root / name, images, labels, class_names=("water", "land"))
    return result


def config(folders: dict[str, Path], output: Path, **kwargs) -> TrainModelConfig:
    settings = {"train_data": str(folders["train"]), "output_model": str(output), "valid_data": str(folders["valid"]),
                "epochs": 1, "batch_size": 8, "learning_rate": 0.01, "seed": 0}
    settings.update(kwargs)
    return TrainModelConfig(**settings)


def test_learns_a_function_of_the_input_and_exports(two_class_folders: dict[str, Path], tmp_path: Path):
    folders = two_class_folders
    reporter = Recorder()
    result = run(config(folders, tmp_path / "model", epochs=10, test_data=str(folders["valid"])), reporter)
    assert result["metrics"]["val_accuracy"] >= 0.9
    assert result["metrics"]["test_accuracy"] == pytest.approx(result["metrics"]["val_accuracy"], abs=1e-6)
    assert [m for m in reporter.messages if m.startswith("epoch 10/10: loss")]
    assert reporter.fractions == sorted(reporter.fractions) and reporter.fractions[-1] == 1.0
    model = tmp_path / "model"
    history = json.loads((model / "history.json").read_text())
    assert history["epoch"] == list(range(1, 11))
    assert {"loss", "accuracy", "precision", "recall", "val_loss", "val_accuracy"} <= set(history)
    best = int(np.argmin(history["val_loss"]))  # the exported epoch: the lowest validation loss
    assert history["exported_epoch"] == result["exported_epoch"] == best + 1
    assert history["val_accuracy"][best] == pytest.approx(result["metrics"]["val_accuracy"])
    description = json.loads((model / "otbtf_model.json").read_text())
    assert description["format"] == "otbtf_qgis-model/1"
    assert description["inputs"] == {"input_xs": {"bands": 2, "dtype": "uint16", "patch_size": [32, 32]}}
    assert description["class_output"] == "predictions_softmax_tensor"
    assert description["n_classes"] == 2 and description["class_names"] == ["water", "land"]
    assert description["outputs"][:3] == ["predictions_softmax_tensor", "predictions_softmax_tensor_crop16",
                                          "predictions_softmax_tensor_crop32"]
    assert description["training"]["patch_size"] == [32, 32] and description["training"]["epochs"] == 10
    assert (training_folder(model) / "logs" / "train").is_dir()
    # The exported model classifies like the labels.
    images, labels = make_samples(4, 64, 2, seed=9)
    serving = tf.saved_model.load(str(model)).signatures["serving_default"]
    predicted = np.argmax(serving(input_xs=tf.constant(images))["predictions_softmax_tensor_crop16"], axis=-1)
    assert predicted.shape == (4, 32, 32)
    assert (predicted == labels[:, 16:48, 16:48, 0]).mean() > 0.85


def test_a_seed_makes_augmented_and_mixed_training_repeatable(two_class_folders: dict[str, Path], tmp_path: Path):
    for number in range(2):
        run(config(two_class_folders, tmp_path / f"model{number}", epochs=3, augment=True, mix=True, seed=5))
    run(config(two_class_folders, tmp_path / "plain", epochs=3, seed=5))
    first, second, plain = (json.loads((tmp_path / name / "history.json").read_text())
                            for name in ("model0", "model1", "plain"))
    assert first["loss"] == second["loss"] and first["val_accuracy"] == second["val_accuracy"]
    assert first["loss"] != plain["loss"]  # the augmentation and the mixing were applied


@pytest.fixture(scope="module")
def overfitting_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Validation labels that contradict the training ones: the more training learns, the worse val_loss gets."""
    root = tmp_path_factory.mktemp("overfit")
    images, labels = make_samples(48, 32, 2, seed=1)
    valid_images, valid_labels = make_samples(32, 32, 2, seed=2)
    return {"train": write_patches_folder(root / "train", images, labels, class_names=("water", "land")),
            "valid": write_patches_folder(root / "valid", valid_images, 1 - valid_labels,
                                          class_names=("water", "land"))}


def test_the_exported_model_is_the_epoch_with_the_lowest_validation_loss(overfitting_folders, tmp_path: Path):
    folders = overfitting_folders
    reporter = Recorder()
    result = run(config(folders, tmp_path / "model", epochs=6, test_data=str(folders["valid"])), reporter)
    history = json.loads((tmp_path / "model" / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    best = int(np.argmin(history["val_loss"])) + 1
    assert best < 6 and history["val_loss"][-1] > history["val_loss"][best - 1]
    assert result["exported_epoch"] == history["exported_epoch"] == best and result["epochs_run"] == 6
    # The test set is the validation set: evaluated on the exported weights it gives the best epoch's figures.
    assert result["metrics"]["test_loss"] == pytest.approx(history["val_loss"][best - 1], rel=1e-5)
    assert result["metrics"]["val_loss"] == pytest.approx(history["val_loss"][best - 1])
    assert f"exporting epoch {best} of 6, the one with the lowest val_loss" in " ".join(reporter.messages)
    assert [m for m in reporter.messages if m.startswith(f"epoch {best}/6:") and m.endswith("(best so far)")]
    description = json.loads((tmp_path / "model" / "otbtf_model.json").read_text())
    assert description["training"]["exported_epoch"] == best and description["training"]["stopped_early"] is False


def test_early_stopping_and_resume_after_it(overfitting_folders, tmp_path: Path):
    folders = overfitting_folders
    output = tmp_path / "model"
    reporter = Recorder()
    result = run(config(folders, output, epochs=10, patience=2), reporter)
    history = json.loads((output / "history.json").read_text())
    best = result["exported_epoch"]
    assert result["stopped_early"] is True and result["epochs_run"] == best + 2 == len(history["epoch"])
    assert (f"early stopping: val_loss has not improved for 2 epochs (PATIENCE = 2); the best epoch is {best}."
            in reporter.messages)
    state = json.loads((training_folder(output) / "state.json").read_text())
    assert state["stopped_early"] is True and state["best_epoch"] == best
    assert sorted(p.name.split(".")[0] for p in (training_folder(output) / "checkpoints").glob("epoch-*.index")) == \
        sorted({f"epoch-{best}", f"epoch-{best + 1}", f"epoch-{best + 2}"})
    # Resuming an early-stopped training exports it again without training more.
    resumed = Recorder()
    again = run(config(folders, output, epochs=10, patience=2, resume=True), resumed)
    assert again["epochs_run"] == best + 2 and again["exported_epoch"] == best
    assert not [m for m in resumed.messages if m.startswith("epoch ")]
    assert again["metrics"]["val_loss"] == pytest.approx(result["metrics"]["val_loss"])


def test_resume_with_other_validation_data_chooses_the_best_epoch_anew(overfitting_folders, tmp_path: Path):
    folders = overfitting_folders
    output = tmp_path / "model"
    first = run(config(folders, output, epochs=3))
    assert first["exported_epoch"] < 3  # the contradicting validation labels: later epochs only get worse
    resumed = Recorder()
    again = run(config(folders, output, epochs=5, resume=True, valid_data=str(folders["train"])), resumed)
    assert (f"VALID_DATA changed since the checkpoint ('{folders['valid']}'): the best epoch is chosen among the "
            "epochs to come." in resumed.messages)
    assert again["exported_epoch"] in (4, 5)


def test_patience_needs_validation_data(folders: dict[str, Path], tmp_path: Path):
    with pytest.raises(InputError, match="early stopping watches the validation loss: give VALID_DATA") as error:
        run(config(folders, tmp_path / "m", valid_data="", patience=3))
    assert error.value.parameter == "PATIENCE"
    with pytest.raises(InputError, match="must be 0 \\(no early stopping\\) or a number of epochs, got -1") as error:
        run(config(folders, tmp_path / "m", patience=-1))
    assert error.value.parameter == "PATIENCE"
    assert not (tmp_path / "m").exists()


def test_cancel_keeps_the_last_checkpoint_and_resume_continues(folders: dict[str, Path], tmp_path: Path):
    output = tmp_path / "model"
    reporter = Recorder(cancel_after="epoch 1/3")
    with pytest.raises(CancelledError):
        run(config(folders, output, epochs=3), reporter)
    assert not output.exists()
    state = json.loads((training_folder(output) / "state.json").read_text())
    assert state["epoch"] == 1 and state["history"]["epoch"] == [1]
    assert not [m for m in reporter.messages if m.startswith("epoch 2/")]

    resumed = Recorder()
    result = run(config(folders, output, epochs=2, resume=True), resumed)
    assert result["initial_epoch"] == 1
    assert "resuming after epoch 1" in " ".join(resumed.messages)
    assert [m for m in resumed.messages if m.startswith("epoch")] == [
        m for m in resumed.messages if m.startswith("epoch 2/2")]
    history_text = (output / "history.json").read_text()
    history = json.loads(history_text)
    assert history["epoch"] == [1, 2] and len(history["loss"]) == 2
    assert '"epoch": [\n    1,\n    2\n  ]' in history_text  # epochs stay integers across a resume
    assert json.loads((training_folder(output) / "state.json").read_text())["epoch"] == 2


@pytest.fixture(scope="module")
def trained(folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("trained") / "model"
    run(config(folders, output, valid_data=""), Recorder())
    return output


def test_resume_from_another_architecture_is_refused(folders: dict[str, Path], trained: Path, tmp_path: Path):
    model_file = tmp_path / "tiny.py"
    model_file.write_text(TINY_MODEL)
    with pytest.raises(ModelError, match=r"RESUME: the checkpoint in .* belongs to another model: it was written by "
                                         "FCNNModel, the model is TinyModel"):
        run(config(folders, trained, epochs=2, resume=True, model_file=str(model_file)), Recorder())


def test_architecture_ignores_the_numbering_of_unnamed_layers():
    from otbtf_qgis.core.models.base import ModelBase
    from otbtf_qgis.core.training.checkpoints import architecture

    class Unnamed(ModelBase):
        def get_outputs(self, normalized_inputs):
            return {"predictions": tf.keras.layers.Conv2D(2, 3)(normalized_inputs["input_xs"])}

    spec = ({"input_xs": tf.TensorSpec((None, 8, 8, 1), tf.float32)}, {})
    first, second = Unnamed(spec), Unnamed(spec)
    assert first.weights[0].path != second.weights[0].path  # Keras numbered the second conv2d
    assert architecture(first) == architecture(second) == {
        "class": "Unnamed", "variables": [["kernel", [3, 3, 1, 2]], ["bias", [2]]]}


def test_resume_with_other_bands_is_refused(trained: Path, tmp_path: Path):
    images, labels = make_samples(16, 32, 4, seed=3)
    four_bands = write_patches_folder(tmp_path / "four", images, labels)
    settings = TrainModelConfig(str(four_bands), str(trained), epochs=2, resume=True)
    with pytest.raises(InputError, match=r"TRAIN_DATA: 'input_xs' has 4 band\(s\) but the checkpoint .* was "
                                         "trained on 3"):
        run(settings, Recorder())


def test_labels_beyond_n_classes(folders: dict[str, Path], tmp_path: Path):
    with pytest.raises(DatasetError, match="TRAIN_DATA: a label has the value 2, but labels must be 0 to 1 "
                                           r"\(N_CLASSES = 2\). Set N_CLASSES to at least 3"):
        run(config(folders, tmp_path / "model", n_classes=2, valid_data=""), Recorder())


def _plan(tmp_path: Path, labels: np.ndarray | None = None, classes: np.ndarray | None = None,
          ignore_label: int | None = None, size: int = 8):
    images = np.zeros((2, size, size, 1), np.uint16)
    folder = write_patches_folder(tmp_path / "d", images, labels, classes, ignore_label=ignore_label)
    return plan_training_data(TrainModelConfig(str(folder), str(tmp_path / "m")))


def test_ignore_label_has_no_weight_and_no_target(tmp_path: Path):
    labels = np.zeros((2, 8, 8, 1), np.uint8)
    labels[0, :2] = 255
    labels[1, :, :4] = 2
    data = _plan(tmp_path, labels=labels, ignore_label=255)
    assert data.ignore_label == 255 and data.n_classes == 3
    preprocess = make_preprocessing_fn(data, (8, 8, 3), "TRAIN_DATA")
    inputs, targets, weights = preprocess({"xs": tf.zeros((2, 8, 8, 1), tf.uint16), "labels": tf.constant(labels)})
    assert list(inputs) == ["input_xs"]
    weights, onehot = weights["predictions"].numpy(), targets["predictions"].numpy()
    assert weights.shape == (2, 8, 8) and weights[0, :2].sum() == 0 and weights[0, 2:].min() == 1
    assert onehot[0, :2].sum() == 0 and (onehot[0, 2:, :, 0] == 1).all()
    assert (onehot[1, :, :4, 2] == 1).all() and weights[1].min() == 1


def test_class_labels_train_the_centre_pixel(tmp_path: Path):
    data = _plan(tmp_path, classes=np.array([2, 1]))
    assert data.label_key == "class" and data.input_keys == ["xs"]
    preprocess = make_preprocessing_fn(data, (8, 8, 3), "TRAIN_DATA")
    _, targets, weights = preprocess({"xs": tf.zeros((2, 8, 8, 1), tf.uint16),
                                      "class": tf.constant([[[[2]]], [[[1]]]], tf.int32)})
    weights, onehot = weights["predictions"].numpy(), targets["predictions"].numpy()
    assert weights.sum() == 2 and weights[0, 4, 4] == 1 and weights[1, 4, 4] == 1
    assert onehot[0, 4, 4].tolist() == [0, 0, 1] and onehot[1, 4, 4].tolist() == [0, 1, 0]
    assert onehot.sum() == 2
    flat = make_preprocessing_fn(data, (3,), "TRAIN_DATA")
    _, targets, weights = flat({"xs": tf.zeros((2, 8, 8, 1), tf.uint16),
                                "class": tf.constant([[[[2]]], [[[1]]]], tf.int32)})
    assert targets["predictions"].numpy().tolist() == [[0, 0, 1], [0, 1, 0]]


def test_metrics_match_keras_with_sample_weights_and_ignore_weight_zero_pixels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (2, 3, 4))
    targets = np.eye(3, dtype=np.float32)[labels]
    logits = rng.normal(size=(2, 3, 4, 3)) * 2
    predictions = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    weights = rng.choice([0.0, 1.0, 2.0], (2, 3, 4)).astype(np.float32)
    assert 0 < (weights == 0).sum() < weights.size
    sums = batch_statistics(tf.constant(targets), tf.constant(predictions), tf.constant(weights)).numpy()
    metrics = metrics_from_statistics(sums.astype(np.float64))
    per_channel = np.broadcast_to(weights[..., None], predictions.shape)
    for name, metric in (("precision", keras.metrics.Precision()), ("recall", keras.metrics.Recall())):
        metric.update_state(targets, predictions, sample_weight=per_channel)
        assert metrics[name] == pytest.approx(float(metric.result()), rel=1e-6), name
    accuracy = keras.metrics.CategoricalAccuracy()
    accuracy.update_state(targets, predictions, sample_weight=weights)
    assert metrics["accuracy"] == pytest.approx(float(accuracy.result()), rel=1e-6)
    entropy = -np.log(np.take_along_axis(predictions, labels[..., None], -1)[..., 0])
    assert metrics["loss"] == pytest.approx(float((entropy * weights).sum() / weights.sum()), rel=1e-5)
    # Ignored pixels (weight 0, as the ignore label gets) count nowhere: anything there changes nothing.
    ignored = weights == 0
    other_targets, other_predictions = targets.copy(), predictions.copy()
    other_targets[ignored] = 0.0
    other_predictions[ignored] = [0.98, 0.01, 0.01]
    other = batch_statistics(tf.constant(other_targets), tf.constant(other_predictions), tf.constant(weights)).numpy()
    np.testing.assert_allclose(other, sums, rtol=1e-6)


def test_negative_labels_are_reported_with_the_fix(tmp_path: Path):
    data = _plan(tmp_path, labels=np.zeros((2, 8, 8, 1), np.uint8), ignore_label=255)
    preprocess = make_preprocessing_fn(data, (8, 8, data.n_classes), "VALID_DATA")
    labels = np.zeros((2, 8, 8, 1), np.int32)
    labels[1, 3, 3] = -2
    labels[1, 4, 4] = -5
    labels[0, 0, 0] = 255  # the ignore label is not a bad label
    batch = tf.data.Dataset.from_tensors({"xs": tf.zeros((2, 8, 8, 1), tf.uint16), "labels": tf.constant(labels)})
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:  # raised inside tf.data, as in training
        next(iter(batch.map(preprocess)))
    error = bad_label_error(raised.value, data)
    assert isinstance(error, DatasetError) and error.parameter == "VALID_DATA"
    assert error.message == (f"a label has the value -5, but labels must be 0 to {data.n_classes - 1} (N_CLASSES = "
                             f"{data.n_classes}) or the ignore label 255. Fix the labels or set IGNORE_LABEL to the "
                             "value of unlabelled pixels.")
    assert bad_label_error(ValueError("something else"), data) is None


def test_trains_from_tfrecords_and_class_labels(tmp_path: Path):
    images, labels = make_samples(16, 32, 3, seed=4)
    classes = labels[:, 16, 16, 0].astype(np.int32).reshape(16, 1, 1, 1)
    records = write_tfrecords_folder(tmp_path / "records", {"xs": images, "class": classes})
    settings = TrainModelConfig(str(records), str(tmp_path / "model"), n_classes=3, epochs=1, batch_size=4)
    reporter = Recorder()
    result = run(settings, reporter)
    assert result["n_classes"] == 3 and result["class_names"] == ["class_0", "class_1", "class_2"]
    assert "trained on the centre pixel" in " ".join(reporter.messages)
    assert (tmp_path / "model" / "saved_model.pb").is_file()


TINY_MODEL = '''
import tensorflow as tf
from otbtf_qgis.core.models.base import ModelBase


class TinyModel(ModelBase):
    def __init__(self, dataset_element_spec, n_classes=2):
        self.n_classes = n_classes
        super().__init__(dataset_element_spec)

    def normalize_inputs(self, inputs):
        return {"input_xs": tf.cast(inputs["input_xs"], tf.float32) / 10000.0}

    def get_outputs(self, normalized_inputs):
        x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(normalized_inputs["input_xs"])
        return {"predictions": tf.keras.layers.Conv2D(self.n_classes, 1, activation="softmax", name="scores")(x)}
'''

OTBTF_STYLE_MODEL = '''
import tensorflow as tf
from otbtf.model import ModelBase
from otbtf import ops

N_CLASSES = 3


class Pixelwise(ModelBase):
    def get_outputs(self, normalized_inputs):
        x = normalized_inputs["input_xs"] * 0.0001
        return {"predictions": tf.keras.layers.Conv2D(N_CLASSES, 1, activation="softmax", name="pixels")(x)}
'''


def test_custom_model_file_trains(folders: dict[str, Path], tmp_path: Path):
    model_file = tmp_path / "otbtf_style.py"
    model_file.write_text(OTBTF_STYLE_MODEL)
    result = run(config(folders, tmp_path / "model", model_file=str(model_file), valid_data=""), Recorder())
    description = json.loads((tmp_path / "model" / "otbtf_model.json").read_text())
    assert description["class_output"] == "pixels" and description["training"]["model_class"] == "Pixelwise"
    # 1×1 convolutions only: the whole output is padding-free, no crop needed
    assert result["serving"] == {"output_name": "pixels", "receptive_field": [32, 32], "expression_field": [32, 32]}


def test_model_file_errors(tmp_path: Path):
    missing = tmp_path / "missing.py"
    with pytest.raises(ModelError, match=r"MODEL_FILE: the model file .*missing.py' does not exist"):
        load_model_class(missing, "X")
    broken = tmp_path / "broken.py"
    broken.write_text("import tensorflow as tf\n\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(ModelError, match=r"MODEL_FILE: importing .*broken.py' failed \(line 3\): RuntimeError: no GPU "
                                         "here"):
        load_model_class(broken, "X")
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def f(:\n")
    with pytest.raises(ModelError, match=r"failed \(line 1\): SyntaxError"):
        load_model_class(syntax, "")
    tiny = tmp_path / "tiny.py"
    tiny.write_text(TINY_MODEL)
    with pytest.raises(ModelError, match=r"CLASS_NAME: 'tiny\.py' has no class 'Tiny'; it defines TinyModel"):
        load_model_class(tiny, "Tiny")
    with pytest.raises(ModelError, match=r"'tf' in 'tiny\.py' is not a subclass of ModelBase"):
        load_model_class(tiny, "tf")
    assert load_model_class(tiny, "").__name__ == "TinyModel"


def test_bad_inputs_before_training(folders: dict[str, Path], tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"TRAIN_DATA: .*is not a dataset folder"):
        run(TrainModelConfig(str(empty), str(tmp_path / "m")), Recorder())
    images, labels = make_samples(8, 32, 4, seed=5)
    four = write_patches_folder(tmp_path / "four", images, labels)
    with pytest.raises(DatasetError, match=r"VALID_DATA: 'xs' has 4 band\(s\) in .* but 3 in TRAIN_DATA \(the model "
                                           r"takes 3\)"):
        run(config(folders, tmp_path / "m", valid_data=str(four)), Recorder())
    unlabelled = write_patches_folder(tmp_path / "unlabelled", images)
    with pytest.raises(DatasetError, match="has no labels"):
        run(TrainModelConfig(str(unlabelled), str(tmp_path / "m")), Recorder())
    odd = write_patches_folder(tmp_path / "odd", *make_samples(8, 24, 3))
    with pytest.raises(DatasetError, match="TRAIN_DATA: the FCNN needs patches whose size is a multiple of 16, "
                                           "'input_xs' has 24×24"):
        run(TrainModelConfig(str(odd), str(tmp_path / "m")), Recorder())
    two_sources = write_tfrecords_folder(tmp_path / "two_sources", {"xs": images, "pan": images[..., :1],
                                                                    "labels": labels})
    with pytest.raises(DatasetError, match=r"TRAIN_DATA: the FCNN takes one image source, the data has 2 "
                                           r"\(input_xs, input_pan\)\. Train a custom model \(MODEL_FILE and "
                                           r"CLASS_NAME\) for several sources\."):
        run(TrainModelConfig(str(two_sources), str(tmp_path / "m"), n_classes=3), Recorder())
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"OUTPUT_MODEL: the folder .* holds files that are not a model \(notes.txt\)"):
        run(config(folders, occupied), Recorder())
    with pytest.raises(InputError, match="EPOCHS: must be at least 1"):
        run(config(folders, tmp_path / "m", epochs=0), Recorder())
    with pytest.raises(InputError, match="CLASS_NAME is set but MODEL_FILE is empty"):
        run(config(folders, tmp_path / "m", class_name="Foo"), Recorder())
    assert not (tmp_path / "m").exists()


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_on_loopback_train_like_one(two_class_folders: dict[str, Path], tmp_path: Path):
    """MultiWorkerMirroredStrategy: two worker processes (TF_CONFIG), the chief alone writes the model."""
    import concurrent.futures
    import sys

    from otbtf_qgis.core.jobs.client import run_worker

    single = run(config(two_class_folders, tmp_path / "single", epochs=6), Recorder())
    params = {"train_data": str(two_class_folders["train"]), "valid_data": str(two_class_folders["valid"]),
              "output_model": str(tmp_path / "cluster"), "epochs": 6, "batch_size": 8, "learning_rate": 0.01,
              "seed": 0}
    ports = _free_ports(2)

    def worker(index: int) -> dict:
        tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker",
                                                                                         "index": index}}
        return run_worker(sys.executable, "trainmodel", params, env={"TF_CONFIG": json.dumps(tf_config)})

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        chief, other = pool.map(worker, (0, 1))
    assert chief["metrics"] == other["metrics"]  # metrics are reduced over both workers
    assert chief["metrics"]["val_accuracy"] >= 0.85
    assert abs(chief["metrics"]["val_accuracy"] - single["metrics"]["val_accuracy"]) < 0.06
    assert (tmp_path / "cluster" / "saved_model.pb").is_file()
    assert json.loads((tmp_path / "cluster" / "history.json").read_text())["epoch"] == list(range(1, 7))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster", "cluster_training", "single", "single_training"]


def test_cancel_through_the_worker_keeps_the_checkpoint_and_publishes_nothing(folders: dict[str, Path],
                                                                             tmp_path: Path):
    """The Processing path: cancel reaches the worker process, which stops; the client cleans up."""
    import sys

    from otbtf_qgis.core.jobs.client import run_worker
    from otbtf_qgis.core.jobs.codec import config_to_dict

    output = tmp_path / "model"
    reporter = Recorder(cancel_after="epoch 1/")
    with pytest.raises(CancelledError):
        run_worker(sys.executable, "trainmodel", config_to_dict(config(folders, output, epochs=20)), reporter,
                   outputs=[output])
    assert not output.exists() and not list(tmp_path.glob(".model.partial-*"))
    state = json.loads((training_folder(output) / "state.json").read_text())
    assert 1 <= state["epoch"] < 20
    assert (training_folder(output) / "checkpoints" / f"epoch-{state['epoch']}.index").is_file()


def test_augmentation_moves_inputs_labels_and_weights_together():
    import numpy as np

    from otbtf_qgis.core.training.pipeline import make_augmentation_fn

    rows, cols = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    image = (rows * 10 + cols).astype(np.float32)[None, :, :, None].repeat(2, axis=0)
    augment = make_augmentation_fn(seed=3)
    seen = set()
    for _ in range(120):
        inputs, targets, weights = augment({"input_xs": tf.constant(image)}, {"predictions": tf.constant(image)},
                                           {"predictions": tf.constant(image[..., 0])})
        out = inputs["input_xs"].numpy()
        np.testing.assert_array_equal(targets["predictions"].numpy(), out)
        np.testing.assert_array_equal(weights["predictions"].numpy(), out[..., 0])
        dihedral = [np.rot90(np.fliplr(image[0, :, :, 0]) if flip else image[0, :, :, 0], k)
                    for flip in (False, True) for k in range(4)]
        matches = [i for i, d in enumerate(dihedral) if np.array_equal(out[0, :, :, 0], d)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 8


def test_mixing_pastes_a_rectangle_of_the_next_patch_with_its_labels_and_weights():
    """Each patch gets one rectangle (a quarter to three quarters per side) of the next patch of the batch."""
    from otbtf_qgis.core.training.pipeline import make_augmentation_fn

    count, size = 4, 16
    image = np.arange(count, dtype=np.float32)[:, None, None, None] * np.ones((count, size, size, 2), np.float32)
    labels = tf.one_hot(tf.constant(np.arange(count)[:, None, None] * np.ones((count, size, size), np.int64)), count)
    weights = np.stack([np.full((size, size), 1.0 + n, np.float32) for n in range(count)])
    mix = make_augmentation_fn(seed=4, turn=False, mix=True)
    sides = set()
    for _ in range(30):
        inputs, targets, weighted = mix({"input_xs": tf.constant(image)}, {"predictions": labels},
                                        {"predictions": tf.constant(weights)})
        out, target = inputs["input_xs"].numpy(), targets["predictions"].numpy()
        weight = weighted["predictions"].numpy()
        for n in range(count):
            pasted = out[n, :, :, 0] != n
            assert set(np.unique(out[n, :, :, 0])) == {n, (n - 1) % count}  # only the previous patch comes in
            rows, cols = np.nonzero(pasted)
            height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
            assert pasted.sum() == height * width  # one rectangle
            assert size // 4 <= height <= 3 * size // 4 and size // 4 <= width <= 3 * size // 4
            sides.add((height, width))
            np.testing.assert_array_equal(target[n].argmax(axis=-1), out[n, :, :, 0])  # labels alike
            np.testing.assert_array_equal(weight[n], out[n, :, :, 0] + 1)  # weights alike
            np.testing.assert_array_equal(out[n, :, :, 0], out[n, :, :, 1])  # every band alike
    assert len(sides) > 10
    runs = [make_augmentation_fn(seed=4, turn=False, mix=True)(
        {"input_xs": tf.constant(image)}, {"predictions": labels}, {"predictions": tf.constant(weights)})
        for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0]["input_xs"].numpy(), runs[1][0]["input_xs"].numpy())  # seeded


def test_mixing_is_skipped_when_the_spatial_tensors_differ_in_size():
    from otbtf_qgis.core.training.pipeline import make_augmentation_fn

    small, large = np.zeros((2, 8, 8, 1), np.float32), np.ones((2, 16, 16, 1), np.float32)
    small[1] = 1
    labels = tf.constant(np.zeros((2, 8, 8, 2), np.float32))
    inputs, _, _ = make_augmentation_fn(seed=1, turn=False, mix=True)(
        {"a": tf.constant(small), "b": tf.constant(large)}, {"t": labels}, {})
    np.testing.assert_array_equal(inputs["a"].numpy(), small)


def test_mixing_is_skipped_when_the_target_is_one_class_per_sample():
    from otbtf_qgis.core.training.pipeline import make_augmentation_fn

    images = np.zeros((2, 8, 8, 1), np.float32)
    images[1] = 1
    per_sample = tf.constant(np.eye(2, dtype=np.float32))
    inputs, _, _ = make_augmentation_fn(seed=1, turn=False, mix=True)(
        {"a": tf.constant(images)}, {"t": per_sample}, {"t": tf.ones((2,))})
    np.testing.assert_array_equal(inputs["a"].numpy(), images)  # labels cannot follow: nothing pasted
    per_pixel = tf.constant(np.zeros((2, 8, 8, 2), np.float32))
    mixed, _, _ = make_augmentation_fn(seed=1, turn=False, mix=True)({"a": tf.constant(images)}, {"t": per_pixel}, {})
    assert 0 < mixed["a"].numpy()[0].sum() < 64  # with per-pixel labels a rectangle of patch 1 lands in patch 0


def test_built_in_models_standardise_their_input_by_the_training_statistics(folders: dict[str, Path],
                                                                          tmp_path: Path):
    from otbtf_qgis.core.data.description import describe_dataset
    from otbtf_qgis.core.training.pipeline import input_statistics

    description = describe_dataset(folders["train"])
    mean, std = input_statistics(description, "xs")
    images = gdal_patches(folders["train"])
    np.testing.assert_allclose(mean, images.reshape(-1, 3).mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(std, images.reshape(-1, 3).std(axis=0), rtol=1e-9)
    reporter = Recorder()
    run(config(folders, tmp_path / "unet", model_type="unet", epochs=1), reporter)
    assert any(m.startswith("model: unet, 3 classes, input 'input_xs' (uint16) standardised by the training "
                            "data's band means ") for m in reporter.messages)
    training = json.loads((tmp_path / "unet" / "otbtf_model.json").read_text())
    assert training["training"]["model_type"] == "unet"
    assert training["training"]["normalization"]["method"] == "standardize"
    np.testing.assert_allclose(training["training"]["normalization"]["mean"], mean)
    assert set(training["outputs"]) >= {"predictions_softmax_tensor", "predictions_softmax_tensor_crop16"}
    scaled = Recorder()
    run(config(folders, tmp_path / "fcnn", normalization="scale", epochs=1), scaled)
    assert any(m.endswith("(uint16) scaled by 0.0001") and m.startswith("model: fcnn") for m in scaled.messages)
    description = json.loads((tmp_path / "fcnn" / "otbtf_model.json").read_text())
    assert description["training"]["normalization"] == {"method": "scale", "scale": 0.0001}


def gdal_patches(folder: Path) -> np.ndarray:
    from osgeo import gdal

    dataset = gdal.Open(str(folder / "xs_patches.tif"))
    return np.stack([dataset.GetRasterBand(b + 1).ReadAsArray() for b in range(dataset.RasterCount)],
                    axis=-1).astype(np.float64)
