"""``otbtf:trainmodel``: train the FCNN (or a user's ModelBase subclass) and export a SavedModel."""

from __future__ import annotations

import json
from typing import Any, get_args

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from otbtf_qgis.core.jobs.codec import config_to_dict
from otbtf_qgis.core.jobs.configs.trainmodel import ModelType, Normalization, TrainModelConfig
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm


class TrainModelAlgorithm(OtbtfAlgorithm):
    """Trains a fully-convolutional model on patches-images or TFRecords and writes a SavedModel."""

    NAME = "trainmodel"
    DISPLAY_NAME = "Train model"
    GROUP = "training"
    HELP = (
        "Trains a model on the output folders of Patches extraction or Create TFRecords and exports it as a "
        "SavedModel for Model serve.\n\nThe model is a built-in one (MODEL_TYPE): fcnn, the FCNN of OTBTF's "
        "documentation (a small U-Net, one image source, patches of a multiple of 16 pixels), or unet, the same with "
        "a full-resolution level and upsampling without checkerboard; or the ModelBase subclass CLASS_NAME of the "
        "Python file MODEL_FILE. The built-in models standardise each band by the training data's mean and deviation "
        "(NORMALIZATION=standardize), or scale it as OTBTF's documentation does (scale: x 0.0001 for 16-bit data, "
        "1/255 for 8-bit). Every source of the data is a model input input_<source>; the labels are the 'labels' "
        "source (label patches) or the 'class' values of a point field (then only the centre pixel of each patch is "
        "trained). N_CLASSES = 0 takes the number of classes from the dataset's class mapping. Pixels whose label is "
        "IGNORE_LABEL (default: the dataset's) count in neither the loss nor the metrics.\n\nAUGMENT flips and turns "
        "the patches. MIX pastes a random rectangle of the next patch of the batch into each patch, labels alike: "
        "with sparse labels drawn inside polygons, a patch holds one labelled class, and a model can fit it by "
        "predicting the class of the surroundings everywhere, which gives blobby maps that miss narrow features "
        "(riparian forests, rivers); mixed patches hold several classes with sharp boundaries, which only the pixels "
        "themselves explain.\n\nVALID_DATA is evaluated after every epoch; the exported model is the epoch with the "
        "lowest validation loss (the log and history.json say which), and PATIENCE stops training once that many "
        "epochs passed without a lower one. TEST_DATA is evaluated once, on the exported model. Progress is reported "
        "per batch and the metrics of every epoch in the log. A checkpoint is written after every epoch in the "
        "folder <OUTPUT_MODEL>_training beside the model, with the TensorBoard logs; Cancel stops at the next batch "
        "and keeps the last checkpoint, and RESUME continues from it. The SavedModel is written only when training "
        "ends, with otbtf_model.json (what Model serve needs: output name, receptive and expression fields, class "
        "names) and history.json (the metrics of every epoch).\n\nWith the environment variable TF_CONFIG describing "
        "a cluster, training runs with MultiWorkerMirroredStrategy (start the same job on every worker)."
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
    MIX = "MIX"
    PATIENCE = "PATIENCE"
    MODEL_TYPE = "MODEL_TYPE"
    NORMALIZATION = "NORMALIZATION"
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
        self.addParameter(QgsProcessingParameterBoolean(
            self.MIX, self.tr("Augment: paste a rectangle of another patch into each patch, labels alike (sparse "
                              "labels)"), defaultValue=False))
        self.addParameter(QgsProcessingParameterNumber(self.PATIENCE, self.tr("Early stopping: epochs without a lower "
                                                                              "validation loss (0: off)"),
                                                       integer, defaultValue=0, minValue=0))
        self.addParameter(QgsProcessingParameterEnum(self.MODEL_TYPE, self.tr("Built-in model"),
                                                     options=list(get_args(ModelType)), defaultValue="fcnn",
                                                     usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterEnum(self.NORMALIZATION, self.tr("Input normalisation of the "
                                                                                 "built-in models"),
                                                     options=list(get_args(Normalization)),
                                                     defaultValue="standardize", usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_MODEL, self.tr("Output model "
                                                                                             "(SavedModel folder)")))
        self.addOutput(QgsProcessingOutputString(self.METRICS, self.tr("Final metrics (JSON)")))
        self.addOutput(QgsProcessingOutputString(self.SERVING, self.tr("Serving defaults (JSON)")))
        self.addOutput(QgsProcessingOutputFolder(self.TENSORBOARD, self.tr("TensorBoard log folder")))
        self.addOutput(QgsProcessingOutputFolder(self.TRAINING_FOLDER, self.tr("Checkpoints folder")))
        self.addOutput(QgsProcessingOutputFile(self.HISTORY, self.tr("Metrics per epoch (history.json)")))
        self.addOutput(QgsProcessingOutputFile(self.MODEL_JSON, self.tr("Model description (otbtf_model.json)")))

    def build_config(self, parameters: dict[str, Any], context: QgsProcessingContext,
                     feedback: QgsProcessingFeedback | None) -> TrainModelConfig:
        """The ``trainmodel`` job's config (see :meth:`OtbtfAlgorithm.build_config`)."""
        train_data = self.parameterAsFile(parameters, self.TRAIN_DATA, context)
        if not train_data:
            raise QgsProcessingException(f"{self.TRAIN_DATA}: give the training data folder.")
        return TrainModelConfig(
            train_data=train_data,
            output_model=self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context),
            valid_data=self.parameterAsFile(parameters, self.VALID_DATA, context) or "",
            test_data=self.parameterAsFile(parameters, self.TEST_DATA, context) or "",
            n_classes=self.parameterAsInt(parameters, self.N_CLASSES, context),
            epochs=self.parameterAsInt(parameters, self.EPOCHS, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            learning_rate=self.parameterAsDouble(parameters, self.LEARNING_RATE, context),
            ignore_label=self.optional_int(parameters, self.IGNORE_LABEL, context),
            seed=self.optional_int(parameters, self.SEED, context),
            model_file=self.parameterAsFile(parameters, self.MODEL_FILE, context) or "",
            class_name=self.parameterAsString(parameters, self.CLASS_NAME, context) or "",
            resume=self.parameterAsBoolean(parameters, self.RESUME, context),
            augment=self.parameterAsBoolean(parameters, self.AUGMENT, context),
            mix=self.parameterAsBoolean(parameters, self.MIX, context),
            patience=self.parameterAsInt(parameters, self.PATIENCE, context),
            model_type=self.parameterAsEnumString(parameters, self.MODEL_TYPE, context),  # type: ignore[arg-type]
            normalization=self.parameterAsEnumString(parameters, self.NORMALIZATION, context),  # type: ignore[arg-type]
        )

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run the ``trainmodel`` job in the worker."""
        config = self.build_config(parameters, context, feedback)
        result = self.run_job(self.NAME, config_to_dict(config), feedback, outputs=[config.output_model])
        return {
            self.OUTPUT_MODEL: result["output_model"],
            self.METRICS: json.dumps(result.get("metrics", {})),
            self.SERVING: json.dumps(result.get("serving", {})),
            self.TENSORBOARD: result.get("tensorboard"),
            self.TRAINING_FOLDER: result.get("training_folder"),
            self.HISTORY: result.get("history"),
            self.MODEL_JSON: result.get("model_json"),
        }
