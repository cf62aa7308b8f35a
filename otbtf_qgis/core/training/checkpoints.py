"""Per-epoch checkpoints and the training state, so that RESUME continues after a cancel or a crash.

Checkpoints, the state and TensorBoard logs live in ``<model>_training`` beside the
model (:func:`~otbtf_qgis.core.jobs.configs.trainmodel.training_folder`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tensorflow as tf

from otbtf_qgis.core.errors import InputError, ModelError
from otbtf_qgis.core.models.base import ModelBase

STATE_FORMAT = "otbtf_qgis-training-state/1"
STATE_FILE = "state.json"
CHECKPOINTS = "checkpoints"


@dataclass
class Progress:
    """Where a training stands after its last completed epoch.

    Attributes:
        epoch: Completed epochs.
        history: Metrics per epoch (``{"epoch": [...], "loss": [...], ...}``).
        best_epoch: The epoch with the lowest validation loss so far (0: none yet, or no validation).
        best_val_loss: Its validation loss.
        stopped_early: Whether early stopping ended the training.
    """

    epoch: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    stopped_early: bool = False


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

    The state (last completed epoch, its checkpoint, the metric history, the best epoch
    so far, the model's architecture and inputs) is replaced atomically after the
    checkpoint files are complete, and the previous checkpoint is kept until then, so a
    crash at any moment leaves a consistent pair. The checkpoint of the best epoch (lowest
    validation loss) is kept too, for export.
    """

    def __init__(self, workspace: Path, model: ModelBase, optimizer: Any, inputs: Mapping[str, Any]) -> None:
        self.workspace = workspace
        self.folder = workspace / CHECKPOINTS
        self.model = model
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

    def restore(self) -> Progress | None:
        """Restore the last checkpoint; return where the training stands, or None without one.

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
        best_loss = state.get("best_val_loss")
        return Progress(int(state["epoch"]), history, int(state.get("best_epoch", 0)),
                        math.inf if best_loss is None else float(best_loss), bool(state.get("stopped_early", False)))

    def restore_best(self, progress: Progress) -> None:
        """Load the model weights of the best epoch (the optimizer's state is left as it is).

        Raises:
            ModelError: its checkpoint is missing or damaged.
        """
        prefix = self.folder / f"epoch-{progress.best_epoch}"
        try:
            tf.train.Checkpoint(model=self.model).read(str(prefix)).expect_partial()
        except (ValueError, tf.errors.OpError) as exc:
            raise ModelError(f"the checkpoint of the best epoch '{prefix}' cannot be read ({type(exc).__name__}: "
                             f"{exc}). Train again with RESUME off.", "RESUME") from exc

    def save(self, progress: Progress, extra: Mapping[str, Any]) -> None:
        """Write the checkpoint of ``progress.epoch``, then the state; drop checkpoints no longer needed.

        The last checkpoint, the one before (until the state names the new one) and the
        best epoch's are kept.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{progress.epoch}"
        self.checkpoint.write(str(self.folder / name))
        previous = self.read_state()
        state = {"format": STATE_FORMAT, "epoch": progress.epoch, "checkpoint": name, "history": dict(progress.history),
                 "best_epoch": progress.best_epoch,
                 "best_val_loss": None if math.isinf(progress.best_val_loss) else progress.best_val_loss,
                 "stopped_early": progress.stopped_early,
                 "architecture": self.architecture, "inputs": self.inputs, **extra}
        temporary = self.state_path.with_name(f".{STATE_FILE}.tmp")
        temporary.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, self.state_path)
        keep = {name, f"epoch-{progress.best_epoch}"}
        if previous:
            keep.add(str(previous["checkpoint"]))
        for path in self.folder.glob("epoch-*"):
            if path.name.split(".")[0] not in keep:
                path.unlink(missing_ok=True)

    def clear(self) -> None:
        """Forget any previous training (a fresh start replaces it)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.state_path.unlink(missing_ok=True)
