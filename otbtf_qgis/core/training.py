"""Train a model on dataset folders and export it: the ``trainmodel`` job.

The data: a training folder (patches-images or TFRecords, see
:mod:`otbtf_qgis.core.data`), optional validation (evaluated after every epoch) and
test folders (evaluated once at the end). Every dataset key except the labels is a
model input ``input_<key>``; the labels are the key ``labels`` (label patches) or
``class`` (one value per sample, from a point field). The target ``predictions`` is
their one-hot encoding (:func:`make_preprocessing_fn`). A label equal to the *ignore
label* (unlabelled pixels of polygon annotations) gets a sample weight of 0 and a row of
zeros: it counts in neither the loss nor the metrics. With ``class`` labels and a
fully-convolutional model, only the centre pixel of each patch (the sample's point) is
trained.

The model: the FCNN of OTBTF's documentation, or a user's ``ModelBase`` subclass
(MODEL_FILE + CLASS_NAME). Adam, categorical cross-entropy averaged over the labelled
pixels, accuracy/precision/recall. ``tf.distribute.MirroredStrategy`` by default,
``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes a cluster (only the chief
writes; the others write to temporary folders).

Checkpoints, the training state and TensorBoard logs live in ``<model>_training``
beside the model (:func:`~otbtf_qgis.core.training_config.training_folder`): a
checkpoint after every epoch, so RESUME continues from the last completed epoch after a
cancel or a crash. Cancel stops at the next batch; the SavedModel is only published
when training ends, so a cancelled run leaves none.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from otbtf_qgis.core.custom_model import load_model_class
from otbtf_qgis.core.data import DatasetDescription, describe_dataset, open_dataset
from otbtf_qgis.core.errors import DatasetError, InputError, ModelError, OtbtfError
from otbtf_qgis.core.export import HISTORY_JSON, TARGET_KEY, check_model_folder, export_model
from otbtf_qgis.core.fcnn import DEFAULT_INPUT_SCALE, FCNNModel
from otbtf_qgis.core.model import ModelBase, is_chief
from otbtf_qgis.core.progress import NullReporter, Reporter
from otbtf_qgis.core.serving.model import METADATA_FILE
from otbtf_qgis.core.training_config import TrainModelConfig, training_folder

#: Dataset keys holding labels, in order of preference: label patches, then per-sample classes.
LABEL_KEYS = ("labels", "class")
INPUT_PREFIX = "input_"
STATE_FORMAT = "otbtf_qgis-training-state/1"
STATE_FILE = "state.json"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
_BAD_LABEL = "OTBTF_BAD_LABEL"


@dataclass
class TrainingData:
    """What training reads, checked before TensorFlow starts.

    Attributes:
        train: The training folder's description.
        valid: The validation folder's, or None.
        test: The test folder's, or None.
        label_key: ``labels`` or ``class``.
        input_keys: Dataset keys fed to the model (as ``input_<key>``).
        n_classes: Number of classes.
        class_names: Class names by index.
        ignore_label: Label value left out of loss and metrics, or None.
    """

    train: DatasetDescription
    valid: DatasetDescription | None
    test: DatasetDescription | None
    label_key: str
    input_keys: list[str]
    n_classes: int
    class_names: list[str]
    ignore_label: int | None

    @property
    def model_inputs(self) -> dict[str, str]:
        """Model input name → dataset key."""
        return {INPUT_PREFIX + key: key for key in self.input_keys}

    def input_spec(self) -> dict[str, tf.TensorSpec]:
        """Batched specs of the model inputs."""
        return {name: tf.TensorSpec((None, *self.train.shapes[key]), tf.as_dtype(self.train.dtypes[key]), name=name)
                for name, key in self.model_inputs.items()}

    def patch_sizes(self) -> dict[str, tuple[int, int]]:
        """Training patch ``(rows, cols)`` per model input."""
        return {name: (self.train.shapes[key][0], self.train.shapes[key][1])
                for name, key in self.model_inputs.items()}


def _check_same_layout(reference: DatasetDescription, other: DatasetDescription, parameter: str) -> None:
    missing = sorted(set(reference.shapes) - set(other.shapes))
    if missing:
        raise DatasetError(f"'{other.path}' lacks the key(s) {', '.join(missing)} of TRAIN_DATA "
                           f"({', '.join(sorted(reference.shapes))}). Give a dataset extracted from the same sources.",
                           parameter)
    for key, shape in reference.shapes.items():
        theirs = other.shapes[key]
        if len(theirs) == len(shape) == 3 and theirs[2] != shape[2]:
            raise DatasetError(f"'{key}' has {theirs[2]} band(s) in '{other.path}' but {shape[2]} in TRAIN_DATA (the "
                               f"model takes {shape[2]}). Use data from the same sources.", parameter)
        if tuple(theirs) != tuple(shape):
            raise DatasetError(f"'{key}' patches are {tuple(theirs)} in '{other.path}' but {tuple(shape)} in "
                               "TRAIN_DATA. Extract them with the same patch size.", parameter)
        if other.dtypes.get(key) != reference.dtypes.get(key):
            raise DatasetError(f"'{key}' is {other.dtypes.get(key)} in '{other.path}' but {reference.dtypes[key]} "
                               "in TRAIN_DATA. Use data from the same sources.", parameter)


def plan_training_data(config: TrainModelConfig) -> TrainingData:
    """Describe and cross-check the dataset folders; settle labels, inputs and classes (TensorFlow-free).

    Raises:
        InputError, DatasetError: naming the parameter (TRAIN_DATA, VALID_DATA,
            TEST_DATA, N_CLASSES) with the fix.
    """
    train = describe_dataset(config.train_data, "TRAIN_DATA")
    valid = describe_dataset(config.valid_data, "VALID_DATA") if config.valid_data.strip() else None
    test = describe_dataset(config.test_data, "TEST_DATA") if config.test_data.strip() else None
    if not train.n_samples:
        raise DatasetError(f"the dataset '{train.path}' has no sample.", "TRAIN_DATA")
    label_key = next((k for k in LABEL_KEYS if k in train.shapes), None)
    if label_key is None:
        raise DatasetError(f"'{train.path}' has no labels: its keys are {', '.join(sorted(train.shapes))}, and "
                           "training needs a 'labels' source (label patches) or 'class' values (from a point "
                           "field). Extract patches with one.", "TRAIN_DATA")
    input_keys = [k for k in train.shapes if k not in LABEL_KEYS]
    if not input_keys:
        raise DatasetError(f"'{train.path}' holds labels only; add an image source to the extraction.",
                           "TRAIN_DATA")
    for description, parameter in ((valid, "VALID_DATA"), (test, "TEST_DATA")):
        if description is not None:
            _check_same_layout(train, description, parameter)
    mapping = train.class_mapping
    if config.n_classes < 0:
        raise InputError(f"must be 0 (from the dataset) or a number of classes, got {config.n_classes}.", "N_CLASSES")
    n_classes = config.n_classes or (max(len(mapping), max(mapping.values(), default=-1) + 1) if mapping else 0)
    if n_classes == 0:
        raise InputError(f"the dataset '{train.path}' has no class mapping: set N_CLASSES to the number of classes "
                         "(labels 0 to N_CLASSES - 1).", "N_CLASSES")
    if n_classes < 2:
        raise InputError(f"training needs at least 2 classes, got {n_classes}.", "N_CLASSES")
    names = {index: name for name, index in mapping.items()}
    class_names = [names.get(i, f"class_{i}") for i in range(n_classes)]
    ignore = config.ignore_label if config.ignore_label is not None else train.ignore_label
    return TrainingData(train, valid, test, label_key, input_keys, n_classes, class_names, ignore)


def default_input_scale(dtype: str) -> float:
    """FCNN input scaling for a data type: 1/255 for 8-bit, 1 for floats, 0.0001 (OTBTF's) otherwise."""
    if dtype in ("uint8", "int8"):
        return 1.0 / 255.0
    if dtype.startswith("float"):
        return 1.0
    return DEFAULT_INPUT_SCALE


def build_model(config: TrainModelConfig, data: TrainingData, reporter: Reporter) -> ModelBase:
    """Instantiate the FCNN or the user's class (call inside the strategy scope).

    Raises:
        ModelError: the model file or class is unusable, or building the model fails.
        DatasetError: the FCNN does not fit the data (several sources, patch size).
    """
    spec: tuple[dict[str, tf.TensorSpec], dict[str, tf.TensorSpec]] = (data.input_spec(), {})
    if not config.model_file.strip():
        if config.class_name.strip():
            raise InputError("CLASS_NAME is set but MODEL_FILE is empty: give the Python file that defines it.",
                             "MODEL_FILE")
        key = data.input_keys[0]
        scale = default_input_scale(data.train.dtypes[key])
        model = FCNNModel(spec, n_classes=data.n_classes, input_scale=scale)  # checks sources and patch size
        reporter.info(f"model: FCNN, {data.n_classes} classes, input '{INPUT_PREFIX}{key}' "
                      f"({data.train.dtypes[key]}) scaled by {scale:g}")
        return model
    cls = load_model_class(config.model_file, config.class_name)
    kwargs: dict[str, Any] = {}
    if "n_classes" in inspect.signature(cls.__init__).parameters:
        kwargs["n_classes"] = data.n_classes
    reporter.info(f"model: {cls.__name__} from {config.model_file}")
    try:
        return cls(dataset_element_spec=spec, **kwargs)  # type: ignore[no-any-return]
    except OtbtfError:
        raise
    except Exception as exc:
        raise ModelError(f"building {cls.__name__} failed: {type(exc).__name__}: {exc}. The model's inputs are "
                         f"{', '.join(data.model_inputs)}.", "MODEL_FILE") from exc


def target_shape(model: ModelBase, data: TrainingData) -> tuple[int, ...]:
    """Shape (without batch) of the model's ``predictions`` for a training patch, checked against the classes.

    Raises:
        ModelError: no ``predictions`` output, or not ``N_CLASSES`` channels.
    """
    if TARGET_KEY not in model.output_names_by_key:
        raise ModelError(f"{type(model).__name__}.get_outputs returns {', '.join(model.output_names_by_key)} but "
                         f"training needs '{TARGET_KEY}' (the class probabilities).", "MODEL_FILE")
    zeros = {name: tf.zeros((1, *spec.shape[1:]), spec.dtype) for name, spec in data.input_spec().items()}
    try:
        output = model(zeros, training=False)[TARGET_KEY]
    except (tf.errors.OpError, ValueError) as exc:
        raise ModelError(f"the model does not run on the training patches: {exc}", "MODEL_FILE") from exc
    shape = tuple(int(d) for d in output.shape[1:])
    if shape[-1] != data.n_classes:
        raise ModelError(f"the model's '{TARGET_KEY}' has {shape[-1]} channels but there are {data.n_classes} "
                         "classes (N_CLASSES). Make the last layer output N_CLASSES values.", "N_CLASSES")
    return shape


def make_preprocessing_fn(data: TrainingData, target: tuple[int, ...], parameter: str,
                          reporter: Reporter | None = None) -> Callable[[dict[str, Any]], Any]:
    """Map a batch of samples to ``(inputs, targets, sample_weights)`` for Keras.

    Inputs are renamed ``input_<key>``; the target ``predictions`` is the one-hot
    encoding of the labels, with weight 0 (and a row of zeros) where the label is the
    ignore label. ``class`` labels fill a spatial target at its centre pixel only
    (weight 1 there, 0 elsewhere). A label outside ``[0, n_classes)`` that is not the
    ignore label stops training with :data:`_BAD_LABEL` in the error (see
    :func:`bad_label_error`).

    Raises:
        DatasetError: label patches and model outputs differ in size.
    """
    n_classes = data.n_classes
    ignore = data.ignore_label
    label_shape = data.train.shapes[data.label_key]
    spatial = len(target) == 3
    centre: npt.NDArray[np.bool_] | None = None
    if spatial and data.label_key == "labels" and tuple(label_shape[:2]) != tuple(target[:2]):
        raise DatasetError(f"the label patches are {label_shape[1]}×{label_shape[0]} but the model outputs "
                           f"{target[1]}×{target[0]} pixels. Extract labels with the image's patch size.", parameter)
    if not spatial and tuple(label_shape[:2]) != (1, 1):
        raise DatasetError(f"the model outputs one value per sample but the labels are {label_shape[1]}×"
                           f"{label_shape[0]} patches. Use 'class' labels (a point field) or a dense model.", parameter)
    if spatial and data.label_key == "class" and tuple(target[:2]) != (1, 1):
        centre = np.zeros(target[:2], dtype=bool)
        centre[target[0] // 2, target[1] // 2] = True
        if reporter is not None and parameter == "TRAIN_DATA":
            reporter.info(f"'class' labels: the model is trained on the centre pixel of its {target[1]}×{target[0]} "
                          "output (the sample's point).")
    inputs_map = data.model_inputs
    label_key = data.label_key

    def preprocess(sample: dict[str, Any]) -> Any:
        inputs = {name: sample[key] for name, key in inputs_map.items()}
        labels = tf.cast(sample[label_key], tf.int32)[..., 0]  # (batch, rows, cols)
        if centre is not None:
            labels = tf.broadcast_to(labels[:, :1, :1], (tf.shape(labels)[0], *centre.shape))
            trained = tf.broadcast_to(tf.constant(centre)[None], tf.shape(labels))
        else:
            trained = tf.ones_like(labels, dtype=tf.bool)
        if not spatial:
            labels = tf.reshape(labels, (-1,))
            trained = tf.reshape(trained, (-1,))
        valid = trained if ignore is None else trained & tf.not_equal(labels, ignore)
        bad = valid & ((labels < 0) | (labels >= n_classes))
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)),
            [f"{_BAD_LABEL}:{parameter}", tf.reduce_min(tf.where(bad, labels, tf.int32.max)),
             tf.reduce_max(tf.where(bad, labels, tf.int32.min))])
        with tf.control_dependencies([check]):
            onehot = tf.one_hot(tf.where(valid, labels, -1), n_classes)
        weights = tf.cast(valid, tf.float32)
        return inputs, {TARGET_KEY: onehot}, {TARGET_KEY: weights}

    return preprocess


def bad_label_error(exc: Exception, data: TrainingData) -> DatasetError | None:
    """The clear error for a label assertion raised by the preprocessing, or None for other errors."""
    match = re.search(rf"{_BAD_LABEL}:(\w+)\]?\s*\[?(-?\d+)\]?\s*\[?(-?\d+)", str(exc))
    if not match:
        return None
    parameter, low, high = match.group(1), int(match.group(2)), int(match.group(3))
    value = high if high >= data.n_classes else low
    ignore = f" or the ignore label {data.ignore_label}" if data.ignore_label is not None else ""
    fix = (f"Set N_CLASSES to at least {value + 1}" if value >= data.n_classes else "Fix the labels") + \
        " or set IGNORE_LABEL to the value of unlabelled pixels."
    return DatasetError(f"a label has the value {value}, but labels must be 0 to {data.n_classes - 1} "
                        f"(N_CLASSES = {data.n_classes}){ignore}. {fix}", parameter)


def distribution_strategy() -> tf.distribute.Strategy:
    """``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names a cluster, else ``MirroredStrategy``."""
    if os.environ.get("TF_CONFIG", "").strip():
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.MirroredStrategy()


def architecture(model: ModelBase) -> dict[str, Any]:
    """What a checkpoint must match: the model class and its variables' kinds and shapes, in order.

    Variables are compared by position, kind (``kernel``, ``bias``, …) and shape, not by
    layer name: Keras numbers unnamed layers per process (``conv2d_3``), which must not
    make a checkpoint look foreign.
    """
    return {"class": type(model).__name__,
            "variables": [[v.path.rsplit("/", 1)[-1], [int(d) for d in v.shape]] for v in model.weights]}


def _architecture_difference(saved: Mapping[str, Any], current: Mapping[str, Any], names: list[str]) -> str:
    if saved.get("class") != current.get("class"):
        return f"it was written by {saved.get('class')}, the model is {current.get('class')}"
    theirs, ours = list(saved.get("variables", [])), list(current.get("variables", []))
    if len(theirs) != len(ours):
        return f"it has {len(theirs)} variables, the model {len(ours)}"
    for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
        if mine != other:
            return (f"variable '{names[index]}' is {tuple(other[1])} in the checkpoint and {tuple(mine[1])} in the "
                    "model")
    return "the variables differ"


class Checkpoints:
    """Per-epoch checkpoints and the training state, in ``<workspace>/checkpoints`` and ``state.json``.

    The state (last completed epoch, its checkpoint, the metric history, the model's
    architecture and inputs) is replaced atomically after the checkpoint files are
    complete, and the previous checkpoint is kept until then, so a crash at any moment
    leaves a consistent pair.
    """

    def __init__(self, workspace: Path, model: ModelBase, optimizer: Any, inputs: Mapping[str, Any]) -> None:
        self.workspace = workspace
        self.folder = workspace / CHECKPOINTS
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
        self.architecture = architecture(model)
        self.variable_names = [str(v.path) for v in model.weights]
        self.inputs = dict(inputs)

    @property
    def state_path(self) -> Path:
        """The state file."""
        return self.workspace / STATE_FILE

    def read_state(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none (or it is unreadable)."""
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) and state.get("format") == STATE_FORMAT else None

    def restore(self) -> tuple[int, dict[str, list[float]]] | None:
        """Restore the last checkpoint; return ``(completed epochs, history)``, or None without one.

        Raises:
            InputError: the checkpoint was trained on inputs of other bands or types.
            ModelError: the checkpoint belongs to another architecture, or is damaged.
        """
        state = self.read_state()
        if state is None:
            return None
        saved_inputs = state.get("inputs", {})
        for name, spec in self.inputs.items():
            theirs = saved_inputs.get(name)
            if theirs is None:
                raise InputError(f"the checkpoint in '{self.workspace}' has no input '{name}' (it takes "
                                 f"{', '.join(saved_inputs)}): the data does not match. Set RESUME off to start over.",
                                 "TRAIN_DATA")
            if theirs["shape"][-1] != spec["shape"][-1]:
                raise InputError(f"'{name}' has {spec['shape'][-1]} band(s) but the checkpoint in '{self.workspace}' "
                                 f"was trained on {theirs['shape'][-1]}. Give data with the same bands, or set "
                                 "RESUME off to start over.", "TRAIN_DATA")
            if theirs["dtype"] != spec["dtype"]:
                raise InputError(f"'{name}' is {spec['dtype']} but the checkpoint in '{self.workspace}' was trained "
                                 f"on {theirs['dtype']}. Give data of the same type, or set RESUME off.", "TRAIN_DATA")
        if state.get("architecture") != self.architecture:
            difference = _architecture_difference(state.get("architecture", {}), self.architecture,
                                                  self.variable_names)
            raise ModelError(f"the checkpoint in '{self.workspace}' belongs to another model: {difference}. Train "
                             "the same model to resume, or set RESUME off to start over (the checkpoint is "
                             "replaced).", "RESUME")
        prefix = self.folder / str(state["checkpoint"])
        try:
            self.checkpoint.read(str(prefix)).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as exc:
            raise ModelError(f"the checkpoint '{prefix}' cannot be restored ({type(exc).__name__}: {exc}). Set "
                             "RESUME off to start over.", "RESUME") from exc
        history = {k: [int(x) if k == "epoch" else float(x) for x in v] for k, v in state.get("history", {}).items()}
        return int(state["epoch"]), history

    def save(self, epoch: int, history: Mapping[str, list[float]], extra: Mapping[str, Any]) -> None:
        """Write the checkpoint of ``epoch`` completed epochs, then the state; drop older checkpoints."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch}"
        self.checkpoint.write(str(self.folder / name))
        previous = self.read_state()
        state = {"format": STATE_FORMAT, "epoch": epoch, "checkpoint": name, "history": dict(history),
                 "architecture": self.architecture, "inputs": self.inputs, **extra}
        temporary = self.state_path.with_name(f".{STATE_FILE}.tmp")
        temporary.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, self.state_path)
        keep = {name, str(previous["checkpoint"])} if previous else {name}
        for path in self.folder.glob("epoch-*"):
            if path.name.split(".")[0] not in keep:
                path.unlink(missing_ok=True)

    def clear(self) -> None:
        """Forget any previous training (a fresh start replaces it)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.state_path.unlink(missing_ok=True)


#: Per-batch sums accumulated over an epoch, reduced over replicas and workers.
_STATISTICS = ("loss", "weight", "correct", "true_positives", "false_positives", "false_negatives")


def batch_statistics(targets: tf.Tensor, predictions: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Weighted sums of one batch: cross-entropy, weight, correct pixels, TP/FP/FN (threshold 0.5).

    Precision and recall are micro-averaged over the one-hot channels, as Keras'
    ``Precision``/``Recall`` on one-hot targets; pixels of weight 0 (ignored) count nowhere.
    """
    weights = tf.cast(weights, tf.float32)
    entropy = keras.losses.categorical_crossentropy(targets, predictions)
    hit = tf.cast(tf.equal(tf.argmax(targets, -1), tf.argmax(predictions, -1)), tf.float32)
    positive = tf.cast(predictions > 0.5, tf.float32)
    channel_weights = weights[..., None]
    return tf.stack([
        tf.reduce_sum(entropy * weights),
        tf.reduce_sum(weights),
        tf.reduce_sum(hit * weights),
        tf.reduce_sum(channel_weights * positive * targets),
        tf.reduce_sum(channel_weights * positive * (1.0 - targets)),
        tf.reduce_sum(channel_weights * (1.0 - positive) * targets),
    ])


def metrics_from_statistics(sums: npt.NDArray[np.float64]) -> dict[str, float]:
    """Loss (mean over labelled pixels), accuracy, precision and recall from :func:`batch_statistics` sums."""
    loss, weight, correct, tp, fp, fn = (float(v) for v in sums)
    return {"loss": loss / weight if weight else 0.0, "accuracy": correct / weight if weight else 0.0,
            "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0}


class DistributedSteps:
    """Training and evaluation steps run with a ``tf.distribute`` strategy, one batch per call.

    A custom loop rather than ``model.fit``: Keras 3's ``fit`` fails with
    ``MultiWorkerMirroredStrategy`` (keras-team/keras#20329), and the loop gives exact
    control over progress, cancel and the ignored pixels. The loss of a batch is the
    cross-entropy summed over labelled pixels divided by their number over all replicas,
    so the gradients the optimizer sums over replicas are those of the global mean.
    """

    def __init__(self, model: ModelBase, optimizer: Any, strategy: tf.distribute.Strategy) -> None:
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.train_step = tf.function(self._train_step)
        self.eval_step = tf.function(self._eval_step)

    def _replica_train(self, inputs: dict[str, Any], targets: dict[str, Any], weights: dict[str, Any]) -> tf.Tensor:
        y, w = targets[TARGET_KEY], tf.cast(weights[TARGET_KEY], tf.float32)
        context = tf.distribute.get_replica_context()
        total_weight = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(w))
        with tf.GradientTape() as tape:
            predictions = self.model(inputs, training=True)[TARGET_KEY]
            entropy = keras.losses.categorical_crossentropy(y, predictions)
            loss = tf.reduce_sum(entropy * w) / tf.maximum(total_weight, 1e-12)
            if self.model.losses:
                loss += tf.add_n(self.model.losses) / float(self.strategy.num_replicas_in_sync)
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables, strict=True))
        return batch_statistics(y, predictions, w)

    def _replica_eval(self, inputs: dict[str, Any], targets: dict[str, Any], weights: dict[str, Any]) -> tf.Tensor:
        predictions = self.model(inputs, training=False)[TARGET_KEY]
        return batch_statistics(targets[TARGET_KEY], predictions, weights[TARGET_KEY])

    def _train_step(self, batch: Any) -> tf.Tensor:
        sums = self.strategy.run(self._replica_train, args=tuple(batch))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)

    def _eval_step(self, batch: Any) -> tf.Tensor:
        sums = self.strategy.run(self._replica_eval, args=tuple(batch))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)

    def run_epoch(self, dataset: Any, train: bool, on_batch: Callable[[int], None]) -> dict[str, float]:
        """One pass over a distributed dataset; ``on_batch(index)`` after each batch (progress, cancel)."""
        step = self.train_step if train else self.eval_step
        sums = np.zeros(len(_STATISTICS))
        for index, batch in enumerate(dataset):
            sums += step(batch).numpy()
            on_batch(index)
        return metrics_from_statistics(sums)


class SummaryWriters:
    """TensorBoard scalars per epoch (``logs/train``, ``logs/validation``), as Keras' callback names them."""

    def __init__(self, log_dir: Path, reporter: Reporter) -> None:
        self.writers: dict[str, Any] = {}
        if importlib.util.find_spec("tensorboard") is None:
            reporter.warning("TensorBoard is not installed in the worker Python: no training logs "
                             "(pip install tensorboard).")
            return
        for name in ("train", "validation"):
            self.writers[name] = tf.summary.create_file_writer(str(log_dir / name))

    def write(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Write ``epoch_<metric>`` scalars; ``val_*`` go to the validation log."""
        for key, value in metrics.items():
            writer = self.writers.get("validation" if key.startswith("val_") else "train")
            if writer is not None:
                with writer.as_default():
                    tf.summary.scalar(f"epoch_{key.removeprefix('val_')}", value, step=epoch)
        for writer in self.writers.values():
            writer.flush()


def format_metrics(values: Mapping[str, float]) -> str:
    """``loss 0.412, accuracy 0.871, …`` with training metrics before validation ones."""
    ordered = sorted(values, key=lambda k: (k.startswith("val_"), k != "loss" and k != "val_loss", k))
    return ", ".join(f"{k} {values[k]:.4g}" for k in ordered)


@contextlib.contextmanager
def _worker_workspace(chief: bool, workspace: Path) -> Iterator[Path]:
    """The chief writes in ``workspace``; other workers in a temporary folder removed at the end."""
    if chief:
        workspace.mkdir(parents=True, exist_ok=True)
        yield workspace
        return
    with tempfile.TemporaryDirectory(prefix="otbtf-worker-") as temporary:
        yield Path(temporary)


def _check_numbers(config: TrainModelConfig) -> None:
    if config.epochs < 1:
        raise InputError(f"must be at least 1, got {config.epochs}.", "EPOCHS")
    if config.batch_size < 1:
        raise InputError(f"must be at least 1, got {config.batch_size}.", "BATCH_SIZE")
    if not (config.learning_rate > 0 and math.isfinite(config.learning_rate)):
        raise InputError(f"must be a positive number, got {config.learning_rate}.", "LEARNING_RATE")


def make_optimizer(model: ModelBase, learning_rate: float) -> Any:
    """Adam, with its variables created (call inside the strategy scope; checkpoints need them)."""
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    optimizer.build(model.trainable_variables)
    return optimizer


def train_epochs(loop: DistributedSteps, datasets: Mapping[str, Any], config: TrainModelConfig, initial_epoch: int,
                 history: dict[str, list[float]], steps_per_epoch: int, reporter: Reporter,
                 summaries: SummaryWriters, checkpoints: Checkpoints,
                 state_extra: Mapping[str, Any]) -> dict[str, float]:
    """Epochs ``initial_epoch`` to ``EPOCHS``, then the test set; return the test metrics.

    After each epoch: its metrics in the log, ``history`` and TensorBoard, then a
    checkpoint. Progress covers 5–93 % of ``reporter`` by batch; cancel is checked after
    every batch.
    """
    training = reporter.sub(0.05, 0.93)
    total = max((config.epochs - initial_epoch) * steps_per_epoch, 1)
    for epoch in range(initial_epoch, config.epochs):
        done = (epoch - initial_epoch) * steps_per_epoch

        def on_train_batch(index: int, done: int = done) -> None:
            reporter.check_canceled()
            training.progress(min((done + index + 1) / total, 1.0))

        metrics = loop.run_epoch(datasets["train"], True, on_train_batch)
        if "valid" in datasets:
            valid = loop.run_epoch(datasets["valid"], False, lambda index: reporter.check_canceled())
            metrics.update({f"val_{k}": v for k, v in valid.items()})
        history.setdefault("epoch", []).append(epoch + 1)
        for key, value in metrics.items():
            history.setdefault(key, []).append(value)
        reporter.info(f"epoch {epoch + 1}/{config.epochs}: {format_metrics(metrics)}")
        summaries.write(epoch + 1, metrics)
        checkpoints.save(epoch + 1, history, state_extra)
    if "test" not in datasets:
        return {}
    test = loop.run_epoch(datasets["test"], False, lambda index: reporter.check_canceled())
    reporter.progress(0.96)
    return {f"test_{k}": v for k, v in test.items()}


def run(config: TrainModelConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Train, evaluate and export (see the module docstring); return paths and final metrics."""
    reporter = reporter or NullReporter()
    _check_numbers(config)
    output = check_model_folder(config.output_model)
    data = plan_training_data(config)
    reporter.info(f"training data: {data.train.n_samples} samples ({data.train.kind}), inputs "
                  f"{', '.join(data.model_inputs)}, labels '{data.label_key}', {data.n_classes} classes"
                  + (f", ignore label {data.ignore_label}" if data.ignore_label is not None else ""))
    strategy = distribution_strategy()
    chief = is_chief(strategy)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    reporter.progress(0.01)
    with strategy.scope():
        model = build_model(config, data, reporter)
        target = target_shape(model, data)
        optimizer = make_optimizer(model, config.learning_rate)
    datasets = open_training_datasets(config, data, target, reporter)
    reporter.progress(0.04)
    inputs = {name: {"shape": list(spec.shape[1:]), "dtype": spec.dtype.name}
              for name, spec in data.input_spec().items()}
    workspace_path = training_folder(output)
    with _worker_workspace(chief, workspace_path) as workspace:
        checkpoints = Checkpoints(workspace, model, optimizer, inputs)
        initial_epoch, history = _start(config, checkpoints, workspace_path, reporter)
        steps = max(data.train.n_samples // config.batch_size if data.train.n_samples else 1, 1)
        loop = DistributedSteps(model, optimizer, strategy)
        distributed = {role: strategy.experimental_distribute_dataset(dataset) for role, dataset in datasets.items()}
        try:
            test_metrics = train_epochs(loop, distributed, config, initial_epoch, history, steps, reporter,
                                        SummaryWriters(workspace / LOGS, reporter), checkpoints,
                                        {"n_classes": data.n_classes, "train_data": data.train.path})
        except tf.errors.InvalidArgumentError as exc:
            error = bad_label_error(exc, data)
            if error is None:
                raise
            raise error from exc
        except tf.errors.ResourceExhaustedError as exc:
            raise InputError(f"out of memory during training ({exc.message.splitlines()[0]}). Lower BATCH_SIZE.",
                             "BATCH_SIZE") from exc
        reporter.check_canceled()
        metrics = {k: v[-1] for k, v in history.items() if k != "epoch" and v}
        metrics.update(test_metrics)
        training_info = {"patch_size": _xy(next(iter(data.patch_sizes().values()))),
                         "epochs": config.epochs, "batch_size": config.batch_size,
                         "learning_rate": config.learning_rate, "model_class": type(model).__name__,
                         "label_key": data.label_key, "ignore_label": data.ignore_label, "metrics": metrics}
        destination = output if chief else workspace / "model"
        description = export_model(model, destination, data.patch_sizes(), data.class_names, training_info,
                                   history, reporter)
        reporter.progress(1.0)
    if test_metrics:
        reporter.info(f"test: {format_metrics(test_metrics)}")
    serving = description["serving"]
    reporter.info(f"model written to {output}; serve it with OUTPUT_NAME={serving['output_name']}, "
                  f"RFIELD={serving['receptive_field'][0]}, EFIELD={serving['expression_field'][0]}")
    return {
        "output_model": str(output),
        "model_json": str(output / METADATA_FILE),
        "history": str(output / HISTORY_JSON),
        "training_folder": str(workspace_path),
        "tensorboard": str(workspace_path / LOGS),
        "metrics": metrics,
        "epochs": config.epochs,
        "initial_epoch": initial_epoch,
        "n_classes": data.n_classes,
        "class_names": data.class_names,
        "serving": serving,
    }


def _xy(rows_cols: tuple[int, int]) -> list[int]:
    return [rows_cols[1], rows_cols[0]]


def _start(config: TrainModelConfig, checkpoints: Checkpoints, workspace: Path,
           reporter: Reporter) -> tuple[int, dict[str, list[float]]]:
    """Restore on RESUME (when there is something to resume), else start afresh."""
    if config.resume:
        restored = checkpoints.restore()
        if restored is not None:
            epoch, history = restored
            reporter.info(f"resuming after epoch {epoch} from {workspace}")
            if epoch >= config.epochs:
                reporter.info(f"the checkpoint already has {epoch} epochs (EPOCHS = {config.epochs}): exporting it.")
            return epoch, history
        reporter.warning(f"RESUME is on but '{workspace}' holds no checkpoint: training from the start.")
    elif checkpoints.read_state() is not None:
        reporter.info(f"starting over: the previous checkpoints in {workspace} are replaced (RESUME is off).")
    checkpoints.clear()
    return 0, {}


def open_training_datasets(config: TrainModelConfig, data: TrainingData, target: tuple[int, ...],
                           reporter: Reporter) -> dict[str, tf.data.Dataset]:
    """The train (shuffled, full batches), valid and test datasets, preprocessed for :class:`DistributedSteps`."""
    datasets: dict[str, tf.data.Dataset] = {}
    for role, description, parameter, shuffle in (("train", data.train, "TRAIN_DATA", True),
                                                  ("valid", data.valid, "VALID_DATA", False),
                                                  ("test", data.test, "TEST_DATA", False)):
        if description is None:
            continue
        dataset = open_dataset(description, config.batch_size, shuffle=shuffle, seed=config.seed,
                               drop_remainder=role == "train", parameter=parameter)
        preprocess = make_preprocessing_fn(data, target, parameter, reporter)
        dataset = dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
        if role == "train" and config.augment:
            # Sequential: the generator's draws then follow the batch order, so a seed gives the same run.
            dataset = dataset.map(make_augmentation_fn(config.seed))
        datasets[role] = dataset.prefetch(tf.data.AUTOTUNE)
    return datasets


def make_augmentation_fn(seed: int | None) -> Callable[..., Any]:
    """Random geometric augmentation of a preprocessed batch: the same transform for inputs, targets, weights.

    Each batch is flipped left-right with probability 1/2 and, when every spatial tensor
    is square, turned by a random number of quarter turns: 8 orientations in all. With
    sparse labels (a few small polygons) this keeps the network from learning the fixed
    layout around each polygon instead of what the pixels look like. Tensors that are not
    spatial (per-sample class targets) pass unchanged.
    """
    generator = (tf.random.Generator.from_seed(seed) if seed is not None
                 else tf.random.Generator.from_non_deterministic_state())

    def transform(tensor: Any, flip: Any, turns: Any, square: bool) -> Any:
        if len(tensor.shape) < 3:
            return tensor
        expanded = tensor if len(tensor.shape) == 4 else tensor[..., None]
        expanded = tf.cond(flip, lambda: tf.reverse(expanded, axis=[2]), lambda: expanded)
        if square:
            expanded = tf.image.rot90(expanded, k=turns)
        return expanded if len(tensor.shape) == 4 else expanded[..., 0]

    def augment(inputs: dict[str, Any], targets: dict[str, Any], weights: dict[str, Any]) -> Any:
        tensors = [*inputs.values(), *targets.values(), *weights.values()]
        square = all(t.shape[1] == t.shape[2] for t in tensors if len(t.shape) >= 3)
        flip = generator.uniform((), 0, 2, dtype=tf.int32) > 0
        turns = generator.uniform((), 0, 4, dtype=tf.int32)
        return tuple({key: transform(value, flip, turns, square) for key, value in group.items()}
                     for group in (inputs, targets, weights))

    return augment
