"""Train a model on dataset folders and export it: the ``trainmodel`` job.

The data: a training folder (patches-images or TFRecords), optional validation
(evaluated after every epoch) and test folders (evaluated once at the end), read as
:mod:`~otbtf_qgis.core.training.pipeline` says.

The model: the FCNN of OTBTF's documentation, or a user's ``ModelBase`` subclass
(MODEL_FILE + CLASS_NAME). Adam, categorical cross-entropy averaged over the labelled
pixels, accuracy/precision/recall. ``tf.distribute.MirroredStrategy`` by default,
``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes a cluster (only the chief
writes; the others write to temporary folders).

Checkpoints, the training state and TensorBoard logs live in ``<model>_training``
beside the model (:func:`~otbtf_qgis.core.jobs.configs.trainmodel.training_folder`): a
checkpoint after every epoch, so RESUME continues from the last completed epoch after a
cancel or a crash. Cancel stops at the next batch; the SavedModel is only published
when training ends, so a cancelled run leaves none.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from otbtf_qgis.core.errors import InputError, ModelError, OtbtfError
from otbtf_qgis.core.jobs.configs.trainmodel import TrainModelConfig, training_folder
from otbtf_qgis.core.models.base import ModelBase, is_chief
from otbtf_qgis.core.models.custom import load_model_class
from otbtf_qgis.core.models.export import HISTORY_JSON, TARGET_KEY, check_model_folder, export_model
from otbtf_qgis.core.models.fcnn import DEFAULT_INPUT_SCALE, FCNNModel
from otbtf_qgis.core.models.saved_model import METADATA_FILE
from otbtf_qgis.core.models.unet import UNetModel
from otbtf_qgis.core.progress import NullReporter, Reporter
from otbtf_qgis.core.training.checkpoints import Checkpoints, Progress
from otbtf_qgis.core.training.loop import (
    DistributedSteps,
    SummaryWriters,
    distribution_strategy,
    format_metrics,
    make_optimizer,
)
from otbtf_qgis.core.training.pipeline import (
    INPUT_PREFIX,
    TrainingData,
    bad_label_error,
    input_statistics,
    open_training_datasets,
    plan_training_data,
)

LOGS = "logs"


#: The built-in models by MODEL_TYPE.
BUILT_IN_MODELS: dict[str, type[FCNNModel]] = {"fcnn": FCNNModel, "unet": UNetModel}


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
        cls = BUILT_IN_MODELS[config.model_type]
        if config.normalization == "standardize":
            mean, std = input_statistics(data.train, key)
            model = cls(spec, n_classes=data.n_classes, input_mean=mean, input_std=std)  # checks sources and size
            how = ("standardised by the training data's band means " + ", ".join(f"{v:.4g}" for v in mean)
                   + " and deviations " + ", ".join(f"{v:.4g}" for v in std))
        else:
            scale = default_input_scale(data.train.dtypes[key])
            model = cls(spec, n_classes=data.n_classes, input_scale=scale)
            how = f"scaled by {scale:g}"
        reporter.info(f"model: {config.model_type}, {data.n_classes} classes, input '{INPUT_PREFIX}{key}' "
                      f"({data.train.dtypes[key]}) {how}")
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
    if config.patience < 0:
        raise InputError(f"must be 0 (no early stopping) or a number of epochs, got {config.patience}.", "PATIENCE")
    if config.patience and not config.valid_data.strip():
        raise InputError("early stopping watches the validation loss: give VALID_DATA, or set PATIENCE to 0.",
                         "PATIENCE")
    if config.epochs < 1:
        raise InputError(f"must be at least 1, got {config.epochs}.", "EPOCHS")
    if config.batch_size < 1:
        raise InputError(f"must be at least 1, got {config.batch_size}.", "BATCH_SIZE")
    if not (config.learning_rate > 0 and math.isfinite(config.learning_rate)):
        raise InputError(f"must be a positive number, got {config.learning_rate}.", "LEARNING_RATE")

def train_epochs(loop: DistributedSteps, datasets: Mapping[str, Any], config: TrainModelConfig, progress: Progress,
                 steps_per_epoch: int, reporter: Reporter, summaries: SummaryWriters, checkpoints: Checkpoints,
                 state_extra: Mapping[str, Any]) -> None:
    """Epochs ``progress.epoch + 1`` to ``EPOCHS`` (fewer when early stopping ends them), updating ``progress``.

    After each epoch: its metrics in the log, the history and TensorBoard, then a
    checkpoint. With validation data the epoch of lowest validation loss is the best one;
    with ``PATIENCE`` training stops once that many epochs passed without a better one.
    Progress covers 5–90 % of ``reporter`` by batch; cancel is checked after every batch.
    """
    training = reporter.sub(0.05, 0.90)
    total = max((config.epochs - progress.epoch) * steps_per_epoch, 1)
    first = progress.epoch
    for epoch in range(first, config.epochs):
        if progress.stopped_early:
            break
        done = (epoch - first) * steps_per_epoch

        def on_train_batch(index: int, done: int = done) -> None:
            reporter.check_canceled()
            training.progress(min((done + index + 1) / total, 1.0))

        metrics = loop.run_epoch(datasets["train"], True, on_train_batch)
        note = ""
        if "valid" in datasets:
            valid = loop.run_epoch(datasets["valid"], False, lambda index: reporter.check_canceled())
            metrics.update({f"val_{k}": v for k, v in valid.items()})
            if metrics["val_loss"] < progress.best_val_loss:
                progress.best_epoch, progress.best_val_loss = epoch + 1, metrics["val_loss"]
                note = " (best so far)"
        progress.epoch = epoch + 1
        progress.history.setdefault("epoch", []).append(epoch + 1)
        for key, value in metrics.items():
            progress.history.setdefault(key, []).append(value)
        reporter.info(f"epoch {epoch + 1}/{config.epochs}: {format_metrics(metrics)}{note}")
        summaries.write(epoch + 1, metrics)
        waited = progress.epoch - progress.best_epoch
        if config.patience and progress.best_epoch and waited >= config.patience and progress.epoch < config.epochs:
            progress.stopped_early = True
            reporter.info(f"early stopping: val_loss has not improved for {waited} epochs (PATIENCE = "
                          f"{config.patience}); the best epoch is {progress.best_epoch}.")
        checkpoints.save(progress, state_extra)


def evaluate_test(loop: DistributedSteps, datasets: Mapping[str, Any], reporter: Reporter) -> dict[str, float]:
    """The test metrics (``test_*``) of the model as it is, or nothing without test data."""
    if "test" not in datasets:
        return {}
    test = loop.run_epoch(datasets["test"], False, lambda index: reporter.check_canceled())
    reporter.progress(0.93)
    return {f"test_{k}": v for k, v in test.items()}


def exported_metrics(progress: Progress) -> dict[str, float]:
    """The metrics of the exported epoch: the best one with validation data, else the last one."""
    row = progress.history.get("epoch", []).index(progress.best_epoch) if progress.best_epoch else -1
    return {key: values[row] for key, values in progress.history.items() if key != "epoch" and values}


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
        progress = _start(config, checkpoints, workspace_path, reporter)
        initial_epoch = progress.epoch
        steps = max(data.train.n_samples // config.batch_size if data.train.n_samples else 1, 1)
        loop = DistributedSteps(model, optimizer, strategy)
        distributed = {role: strategy.experimental_distribute_dataset(dataset) for role, dataset in datasets.items()}
        try:
            train_epochs(loop, distributed, config, progress, steps, reporter,
                         SummaryWriters(workspace / LOGS, reporter), checkpoints,
                         {"n_classes": data.n_classes, "train_data": data.train.path,
                          "valid_data": config.valid_data})
            if progress.best_epoch and progress.best_epoch != progress.epoch:
                checkpoints.restore_best(progress)
            if progress.best_epoch:
                reporter.info(f"exporting epoch {progress.best_epoch} of {progress.epoch}, the one with the lowest "
                              f"val_loss ({progress.best_val_loss:.4g})")
            test_metrics = evaluate_test(loop, distributed, reporter)
        except tf.errors.InvalidArgumentError as exc:
            error = bad_label_error(exc, data)
            if error is None:
                raise
            raise error from exc
        except tf.errors.ResourceExhaustedError as exc:
            raise InputError(f"out of memory during training ({exc.message.splitlines()[0]}). Lower BATCH_SIZE.",
                             "BATCH_SIZE") from exc
        reporter.check_canceled()
        metrics = exported_metrics(progress)
        metrics.update(test_metrics)
        exported_epoch = progress.best_epoch or progress.epoch
        training_info = {"patch_size": _xy(next(iter(data.patch_sizes().values()))),
                         "epochs": config.epochs, "epochs_run": progress.epoch, "exported_epoch": exported_epoch,
                         "stopped_early": progress.stopped_early, "patience": config.patience,
                         "model_type": config.model_type if not config.model_file.strip() else "",
                         "normalization": _normalization(model),
                         "batch_size": config.batch_size,
                         "learning_rate": config.learning_rate, "model_class": type(model).__name__,
                         "label_key": data.label_key, "ignore_label": data.ignore_label, "metrics": metrics}
        destination = output if chief else workspace / "model"
        history = {**progress.history, "exported_epoch": exported_epoch}
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
        "epochs_run": progress.epoch,
        "exported_epoch": exported_epoch,
        "stopped_early": progress.stopped_early,
        "initial_epoch": initial_epoch,
        "n_classes": data.n_classes,
        "class_names": data.class_names,
        "serving": serving,
    }


def _xy(rows_cols: tuple[int, int]) -> list[int]:
    return [rows_cols[1], rows_cols[0]]


def _start(config: TrainModelConfig, checkpoints: Checkpoints, workspace: Path, reporter: Reporter) -> Progress:
    """Restore on RESUME (when there is something to resume), else start afresh."""
    if config.resume:
        restored = checkpoints.restore()
        if restored is not None:
            reporter.info(f"resuming after epoch {restored.epoch} from {workspace}")
            before = (checkpoints.read_state() or {}).get("valid_data")
            if restored.best_epoch and before is not None and before != config.valid_data:
                # a validation loss of other data is no yardstick for the epochs to come
                reporter.info(f"VALID_DATA changed since the checkpoint ('{before}'): the best epoch is chosen "
                              "among the epochs to come.")
                restored.best_epoch, restored.best_val_loss = 0, math.inf
            if restored.stopped_early and config.patience:
                reporter.info(f"early stopping ended this training at epoch {restored.epoch}: exporting it.")
            elif restored.epoch >= config.epochs:
                reporter.info(f"the checkpoint already has {restored.epoch} epochs (EPOCHS = {config.epochs}): "
                              "exporting it.")
            else:
                restored.stopped_early = False  # PATIENCE was changed or turned off: train on
            return restored
        reporter.warning(f"RESUME is on but '{workspace}' holds no checkpoint: training from the start.")
    elif checkpoints.read_state() is not None:
        reporter.info(f"starting over: the previous checkpoints in {workspace} are replaced (RESUME is off).")
    checkpoints.clear()
    return Progress()


def _normalization(model: ModelBase) -> dict[str, Any]:
    """How a built-in model normalises its input, for ``otbtf_model.json``."""
    if not isinstance(model, FCNNModel):
        return {}
    if model.input_mean is not None:
        return {"method": "standardize", "mean": model.input_mean, "std": model.input_std}
    return {"method": "scale", "scale": model.input_scale}
