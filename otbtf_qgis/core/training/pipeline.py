"""What training reads: the data plan (TensorFlow-free), targets and weights, augmentation, the datasets.

Every dataset key except the labels is a model input ``input_<key>``; the labels are the
key ``labels`` (label patches) or ``class`` (one value per sample, from a point field).
The target ``predictions`` is their one-hot encoding (:func:`make_preprocessing_fn`). A
label equal to the *ignore label* (unlabelled pixels of polygon annotations) gets a
sample weight of 0 and a row of zeros: it counts in neither the loss nor the metrics.
With ``class`` labels and a fully-convolutional model, only the centre pixel of each
patch (the sample's point) is trained.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf

from otbtf_qgis.core.data.description import DatasetDescription, describe_dataset
from otbtf_qgis.core.data.loading import open_dataset
from otbtf_qgis.core.errors import DatasetError, InputError
from otbtf_qgis.core.jobs.configs.trainmodel import TrainModelConfig
from otbtf_qgis.core.models.export import TARGET_KEY
from otbtf_qgis.core.progress import Reporter

#: Dataset keys holding labels, in order of preference: label patches, then per-sample classes.
LABEL_KEYS = ("labels", "class")
INPUT_PREFIX = "input_"
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
        if role == "train" and (config.augment or config.mix):
            # Sequential: the generator's draws then follow the batch order, so a seed gives the same run.
            dataset = dataset.map(make_augmentation_fn(config.seed, turn=config.augment, mix=config.mix))
        datasets[role] = dataset.prefetch(tf.data.AUTOTUNE)
    return datasets


def make_augmentation_fn(seed: int | None, turn: bool = True, mix: bool = False) -> Callable[..., Any]:
    """Random augmentation of a preprocessed batch: the same transform for inputs, targets, weights.

    With ``turn``, each batch is flipped left-right with probability 1/2 and, when every spatial tensor
    is square, turned by a random number of quarter turns: 8 orientations in all. With
    sparse labels (a few small polygons) this keeps the network from learning the fixed
    layout around each polygon instead of what the pixels look like. Tensors that are not
    spatial (per-sample class targets) pass unchanged.

    With ``mix``, each patch then gets a random rectangle (a quarter to three quarters of
    its side, per axis) of the next patch of the batch pasted in, labels and weights alike
    (CutMix for segmentation). Sparse labels drawn inside polygons give patches of one
    labelled class, which a model can fit by predicting the class of the surroundings
    everywhere, giving blobby maps that miss narrow features; mixed patches hold several
    classes with sharp boundaries, which only the pixels themselves can explain. Mixing
    needs every spatial tensor at the same size (else it is skipped).
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

    def axis_mask(count: Any, size: int) -> Any:
        """Per sample, a random run of a quarter to three quarters of ``size`` positions: (batch, size)."""
        length = generator.uniform((count,), max(1, size // 4), max(2, 3 * size // 4 + 1), dtype=tf.int32)
        start = tf.cast(generator.uniform((count,)) * tf.cast(size - length + 1, tf.float32), tf.int32)
        positions = tf.range(size)[None, :]
        return (positions >= start[:, None]) & (positions < (start + length)[:, None])

    def paste(tensor: Any, mask: Any) -> Any:
        if len(tensor.shape) < 3:
            return tensor
        other = tf.roll(tensor, shift=1, axis=0)
        expanded = mask if len(tensor.shape) == 3 else mask[..., None]
        return tf.where(expanded, other, tensor)

    def augment(inputs: dict[str, Any], targets: dict[str, Any], weights: dict[str, Any]) -> Any:
        tensors = [*inputs.values(), *targets.values(), *weights.values()]
        spatial = [t for t in tensors if len(t.shape) >= 3]
        square = all(t.shape[1] == t.shape[2] for t in spatial)
        groups: tuple[dict[str, Any], ...] = (inputs, targets, weights)
        if turn:
            flip = generator.uniform((), 0, 2, dtype=tf.int32) > 0
            turns = generator.uniform((), 0, 4, dtype=tf.int32)
            groups = tuple({key: transform(value, flip, turns, square) for key, value in group.items()}
                           for group in groups)
        sizes = {(t.shape[1], t.shape[2]) for t in spatial}
        # Mixing pastes labels with pixels: a target per sample (a class per patch) cannot follow.
        per_pixel_targets = any(len(t.shape) >= 3 for t in targets.values())
        if not mix or not per_pixel_targets or len(sizes) != 1 or None in next(iter(sizes)):
            return groups
        rows, cols = next(iter(sizes))
        count = tf.shape(spatial[0])[0]
        mask = axis_mask(count, rows)[:, :, None] & axis_mask(count, cols)[:, None, :]
        return tuple({key: paste(value, mask) for key, value in group.items()} for group in groups)

    return augment


#: Samples read to estimate the input statistics of the built-in models' normalisation.
STATISTICS_SAMPLES = 4096


def input_statistics(description: DatasetDescription, key: str, parameter: str = "TRAIN_DATA",
                     max_samples: int = STATISTICS_SAMPLES) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation of ``key`` over the first ``max_samples`` samples of a dataset.

    The samples are read in the folder's order (no shuffle), so the figures are the same
    on every run, a resumed one included.
    """
    dataset = open_dataset(description, batch_size=256, shuffle=False, drop_remainder=False, parameter=parameter)
    count, total, squares = 0, None, None
    for batch in dataset:
        values = batch[key].numpy().astype(np.float64)
        values = values.reshape(-1, values.shape[-1])
        total = values.sum(axis=0) if total is None else total + values.sum(axis=0)
        squares = (values ** 2).sum(axis=0) if squares is None else squares + (values ** 2).sum(axis=0)
        count += values.shape[0]
        if count >= max_samples * int(np.prod(description.shapes[key][:2])):
            break
    if total is None or squares is None or count == 0:
        raise DatasetError(f"'{description.path}' has no sample to compute the input statistics from.", parameter)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    return [float(v) for v in mean], [float(v) for v in std]
