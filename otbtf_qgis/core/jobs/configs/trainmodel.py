"""Settings of the ``trainmodel`` job (TensorFlow-free, shared by Processing, the CLI and Python).

The job itself is :func:`otbtf_qgis.core.training.trainmodel.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

#: The built-in models (when no MODEL_FILE is given).
ModelType = Literal["fcnn", "unet"]
#: How the built-in models normalise their input.
Normalization = Literal["standardize", "scale"]

#: Folder beside the model that keeps what training needs to resume: ``<model>_training``.
TRAINING_FOLDER_SUFFIX = "_training"


@dataclass(frozen=True)
class TrainModelConfig:
    """What to train, on what, and where to write the SavedModel."""

    train_data: str = field(metadata={"param": "TRAIN_DATA",
                                      "help": "training dataset folder (patches-images or TFRecords)"})
    output_model: str = field(metadata={"param": "OUTPUT_MODEL",
                                        "help": "folder of the SavedModel to write (new, empty, or a previous model)"})
    valid_data: str = field(default="", metadata={"param": "VALID_DATA",
                                                  "help": "validation dataset folder, evaluated after every epoch"})
    test_data: str = field(default="", metadata={"param": "TEST_DATA",
                                                 "help": "test dataset folder, evaluated once after training"})
    n_classes: int = field(default=0, metadata={"param": "N_CLASSES",
                                                "help": "number of classes (0: from the dataset's class mapping)"})
    epochs: int = field(default=10, metadata={"param": "EPOCHS", "help": "number of passes over the training data"})
    batch_size: int = field(default=8, metadata={"param": "BATCH_SIZE", "help": "samples per training step"})
    learning_rate: float = field(default=1e-4, metadata={"param": "LEARNING_RATE", "help": "Adam's learning rate"})
    ignore_label: int | None = field(default=None, metadata={
        "param": "IGNORE_LABEL",
        "help": "label value of unlabelled pixels, left out of the loss and metrics (default: the dataset's)"})
    seed: int | None = field(default=None, metadata={"param": "SEED",
                                                     "help": "random seed for weights, sample order and augmentation"})
    model_type: ModelType = field(default="fcnn", metadata={
        "param": "MODEL_TYPE",
        "help": "built-in model: fcnn (OTBTF's documentation) or unet (with a full-resolution level, sharper)"})
    normalization: Normalization = field(default="standardize", metadata={
        "param": "NORMALIZATION",
        "help": "built-in models: standardize each band by the training data's statistics, or scale "
                "(OTBTF's documentation: x 0.0001 for 16-bit data)"})
    model_file: str = field(default="", metadata={"param": "MODEL_FILE",
                                                  "help": "Python file defining a ModelBase subclass (default: FCNN)"})
    class_name: str = field(default="", metadata={"param": "CLASS_NAME",
                                                  "help": "the ModelBase subclass of MODEL_FILE to train"})
    resume: bool = field(default=False, metadata={"param": "RESUME",
                                                  "help": "continue from the last checkpoint of OUTPUT_MODEL"})
    augment: bool = field(default=False, metadata={
        "param": "AUGMENT", "help": "random flips and quarter turns of the training patches (labels alike)"})
    mix: bool = field(default=False, metadata={
        "param": "MIX", "help": "paste a random rectangle of another training patch into each patch, labels "
                                "alike, so that patches hold several classes (for sparse labels)"})
    patience: int = field(default=0, metadata={
        "param": "PATIENCE",
        "help": "stop after this many epochs without a lower validation loss (0: train all EPOCHS)"})


def training_folder(output_model: str | Path) -> Path:
    """Where checkpoints, TensorBoard logs and the training state live: ``<model>_training`` beside the model.

    Beside, not inside: the model folder is published whole at the end (a cancelled run
    publishes nothing) while checkpoints must survive a cancel.
    """
    path = Path(output_model)
    return path.with_name(path.name + TRAINING_FOLDER_SUFFIX)
