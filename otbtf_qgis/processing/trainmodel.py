"""``otbtf:trainmodel``: train the FCNN (or a user's ModelBase subclass) and export a SavedModel."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from otbtf_qgis.core.config import config_to_dict
from otbtf_qgis.core.training_config import TrainModelConfig
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm


class TrainModelAlgorithm(OtbtfAlgorithm):
    """Trains a fully-convolutional model on patches-images or TFRecords and writes a SavedModel."""

    NAME = "trainmodel"
    DISPLAY_NAME = "Train model"
    GROUP = "training"
    HELP = (
        "Trains a model on the output folders of Patches extraction or Create TFRecords and exports it as a "
        "SavedModel for Model serve.\n\n"
        "The model is the FCNN of OTBTF's documentation (a small U-Net, one image source, patches of a multiple of "
        "16 pixels), or the ModelBase subclass CLASS_NAME of the Python file MODEL_FILE. Every source of the data "
        "is a model input input_<source>; the labels are the 'labels' source (label patches) or the 'class' values "
        "of a point field (then only the centre pixel of each patch is trained). N_CLASSES = 0 takes the number of "
        "classes from the dataset's class mapping. Pixels whose label is IGNORE_LABEL (default: the dataset's) "
        "count in neither the loss nor the metrics.\n\n"
        "VALID_DATA is evaluated after every epoch, TEST_DATA once at the end. Progress is reported per batch and "
        "the metrics of every epoch in the log. A checkpoint is written after every epoch in the folder "
        "<OUTPUT_MODEL>_training beside the model, with the TensorBoard logs; Cancel stops at the next batch and "
        "keeps the last checkpoint, and RESUME continues from it. The SavedModel is written only when training "
        "ends, with otbtf_model.json (what Model serve needs: output name, receptive and expression fields, class "
        "names) and history.json (the metrics of every epoch).\n\n"
        "With the environment variable TF_CONFIG describing a cluster, training runs with "
        "MultiWorkerMirroredStrategy (start the same job on every worker)."
    )

    TRAIN_DATA = "TRAIN_DATA"
    VALID_DATA = "VALID_DATA"
    TEST_DATA = "TEST_DATA"
    N_CLASSES = "N_CLASSES"
    EPOCHS = "EPOCHS"
    BATCH_SIZE = "BATCH_SIZE"
    LEARNING_RATE = "LEARNING_RATE"
    IGNORE_LABEL = "IGNORE_LABEL"
    SEED = "SEED"
    MODEL_FILE = "MODEL_FILE"
    CLASS_NAME = "CLASS_NAME"
    RESUME = "RESUME"
    AUGMENT = "AUGMENT"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    METRICS = "METRICS"
    SERVING = "SERVING"
    TENSORBOARD = "TENSORBOARD"
    TRAINING_FOLDER = "TRAINING_FOLDER"
    HISTORY = "HISTORY"
    MODEL_JSON = "MODEL_JSON"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API name
        """Declare the parameters and outputs."""
        folder = QgsProcessingParameterFile.Folder
        self.addParameter(QgsProcessingParameterFile(self.TRAIN_DATA, self.tr("Training data (patches or TFRecords "
                                                                             "folder)"), behavior=folder))
        self.addParameter(QgsProcessingParameterFile(self.VALID_DATA, self.tr("Validation data"), behavior=folder,
                                                     optional=True))
        self.addParameter(QgsProcessingParameterFile(self.TEST_DATA, self.tr("Test data"), behavior=folder,
                                                     optional=True))
        integer = QgsProcessingParameterNumber.Integer
        self.addParameter(QgsProcessingParameterNumber(self.N_CLASSES, self.tr("Number of classes (0: from the "
                                                                               "dataset)"), integer, defaultValue=0,
                                                       minValue=0))
        self.addParameter(QgsProcessingParameterNumber(self.EPOCHS, self.tr("Epochs"), integer, defaultValue=10,
                                                       minValue=1))
        self.addParameter(QgsProcessingParameterNumber(self.BATCH_SIZE, self.tr("Batch size"), integer,
                                                       defaultValue=8, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(self.LEARNING_RATE, self.tr("Learning rate"),
                                                       QgsProcessingParameterNumber.Double, defaultValue=0.0001,
                                                       minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(self.IGNORE_LABEL, self.tr("Label of unlabelled pixels "
                                                                                  "(default: the dataset's)"),
                                                       integer, optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.SEED, self.tr("Random seed (empty: random)"), integer,
                                                       optional=True))
        self.addParameter(QgsProcessingParameterFile(self.MODEL_FILE, self.tr("Model file (Python, empty: FCNN)"),
                                                     extension="py", optional=True))
        self.addParameter(QgsProcessingParameterString(self.CLASS_NAME, self.tr("Model class in the model file"),
                                                       optional=True))
        self.addParameter(QgsProcessingParameterBoolean(self.RESUME, self.tr("Resume from the last checkpoint"),
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterBoolean(
            self.AUGMENT, self.tr("Augment: random flips and quarter turns of the patches"), defaultValue=False))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_MODEL, self.tr("Output model "
                                                                                             "(SavedModel folder)")))
        self.addOutput(QgsProcessingOutputString(self.METRICS, self.tr("Final metrics (JSON)")))
        self.addOutput(QgsProcessingOutputString(self.SERVING, self.tr("Serving defaults (JSON)")))
        self.addOutput(QgsProcessingOutputFolder(self.TENSORBOARD, self.tr("TensorBoard log folder")))
        self.addOutput(QgsProcessingOutputFolder(self.TRAINING_FOLDER, self.tr("Checkpoints folder")))
        self.addOutput(QgsProcessingOutputFile(self.HISTORY, self.tr("Metrics per epoch (history.json)")))
        self.addOutput(QgsProcessingOutputFile(self.MODEL_JSON, self.tr("Model description (otbtf_model.json)")))

    @staticmethod
    def _optional_int(parameters: dict[str, Any], name: str) -> int | None:
        value = parameters.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return int(float(value))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run the ``trainmodel`` job in the worker."""
        output = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        config = TrainModelConfig(
            train_data=self.parameterAsFile(parameters, self.TRAIN_DATA, context),
            output_model=output,
            valid_data=self.parameterAsFile(parameters, self.VALID_DATA, context) or "",
            test_data=self.parameterAsFile(parameters, self.TEST_DATA, context) or "",
            n_classes=self.parameterAsInt(parameters, self.N_CLASSES, context),
            epochs=self.parameterAsInt(parameters, self.EPOCHS, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            learning_rate=self.parameterAsDouble(parameters, self.LEARNING_RATE, context),
            ignore_label=self._optional_int(parameters, self.IGNORE_LABEL),
            seed=self._optional_int(parameters, self.SEED),
            model_file=self.parameterAsFile(parameters, self.MODEL_FILE, context) or "",
            class_name=self.parameterAsString(parameters, self.CLASS_NAME, context) or "",
            resume=self.parameterAsBoolean(parameters, self.RESUME, context),
            augment=self.parameterAsBoolean(parameters, self.AUGMENT, context),
        )
        result = self.run_job("trainmodel", config_to_dict(config), feedback, outputs=[output])
        return {
            self.OUTPUT_MODEL: result["output_model"],
            self.METRICS: json.dumps(result.get("metrics", {})),
            self.SERVING: json.dumps(result.get("serving", {})),
            self.TENSORBOARD: result.get("tensorboard"),
            self.TRAINING_FOLDER: result.get("training_folder"),
            self.HISTORY: result.get("history"),
            self.MODEL_JSON: result.get("model_json"),
        }
