"""ModelBase on Keras 3: OTBTF's documentation code, TensorFlow ops on symbolic tensors, cropped outputs, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from otbtf_qgis.core.data.patches import DatasetFromPatchesImages
from otbtf_qgis.core.errors import ModelError
from otbtf_qgis.core.models.base import ModelBase, TensorFlowOpLayer, is_chief

# ---------------------------------------------------------------------------------------------
# The model code of OTBTF's documentation ("Build and train deep learning models"), verbatim
# except for the import line (`from otbtf.model import ModelBase` in the documentation).
from otbtf_qgis.core.models.base import ModelBase as DocModelBase
from otbtf_qgis.core.models.fcnn import FCNNModel
from otbtf_qgis.core.models.receptive_field import crop_name
from tests.core.training_data import make_samples, write_patches_folder

ModelBase_ = DocModelBase

# Number of classes estimated by the model
N_CLASSES = 2

# Name of the input
INPUT_NAME = "input_xs"

# Name of the target output
TARGET_NAME = "predictions"

# Name (prefix) of the output we will use at inference time
OUTPUT_SOFTMAX_NAME = "predictions_softmax_tensor"


def dataset_preprocessing_fn(examples: dict):
    return {
        INPUT_NAME: examples["input_xs_patches"],
        TARGET_NAME: tf.one_hot(
            tf.squeeze(tf.cast(examples["labels_patches"], tf.int32), axis=-1),
            depth=N_CLASSES
        )
    }


class DocFCNNModel(DocModelBase):
    def normalize_inputs(self, inputs: dict):
        return {INPUT_NAME: tf.cast(inputs[INPUT_NAME], tf.float32) * 0.0001}

    def get_outputs(self, normalized_inputs: dict) -> dict:

        def _conv(inp, depth, name):
            conv_op = tf.keras.layers.Conv2D(
                filters=depth,
                kernel_size=3,
                strides=2,
                activation="relu",
                padding="same",
                name=name
            )
            return conv_op(inp)

        def _tconv(inp, depth, name, activation="relu"):
            tconv_op = tf.keras.layers.Conv2DTranspose(
                filters=depth,
                kernel_size=3,
                strides=2,
                activation=activation,
                padding="same",
                name=name
            )
            return tconv_op(inp)

        out_conv1 = _conv(normalized_inputs[INPUT_NAME], 16, "conv1")
        out_conv2 = _conv(out_conv1, 32, "conv2")
        out_conv3 = _conv(out_conv2, 64, "conv3")
        out_conv4 = _conv(out_conv3, 64, "conv4")
        out_tconv1 = _tconv(out_conv4, 64, "tconv1") + out_conv3
        out_tconv2 = _tconv(out_tconv1, 32, "tconv2") + out_conv2
        out_tconv3 = _tconv(out_tconv2, 16, "tconv3") + out_conv1
        predictions = _tconv(out_tconv3, N_CLASSES, OUTPUT_SOFTMAX_NAME, "softmax")

        return {TARGET_NAME: predictions}
# ---------------------------------------------------------------------------------------------


def doc_datasets(tmp_path: Path) -> tuple[tf.data.Dataset, tf.data.Dataset, tf.data.Dataset]:
    """The documentation's datasets: patches-images of 'xs' and 'labels', split into (inputs, targets)."""
    datasets = []
    for name, seed in (("train", 1), ("valid", 2), ("test", 3)):
        images, labels = make_samples(16, 32, 4, seed=seed)
        folder = write_patches_folder(tmp_path / name, images, (labels > 0).astype(np.uint8))
        dataset = DatasetFromPatchesImages(filenames_dict={"input_xs_patches": [folder / "xs_patches.tif"],
                                                           "labels_patches": [folder / "labels_patches.tif"]})
        datasets.append(dataset.get_tf_dataset(batch_size=8, preprocessing_fn=dataset_preprocessing_fn,
                                               targets_keys=[TARGET_NAME]))
    return datasets[0], datasets[1], datasets[2]


def test_documentation_model_trains_two_epochs_and_exports(tmp_path: Path):
    ds_train, ds_valid, ds_test = doc_datasets(tmp_path)
    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        model = DocFCNNModel(dataset_element_spec=ds_train.element_spec)
        model.compile(
            loss=tf.keras.losses.CategoricalCrossentropy(),
            optimizer=tf.keras.optimizers.Adam(learning_rate=1e-4),
            metrics=[tf.keras.metrics.Precision(), tf.keras.metrics.Recall()]
        )
        history = model.fit(ds_train, epochs=2, validation_data=ds_valid, verbose=0)
        results = model.evaluate(ds_test, batch_size=64, return_dict=True, verbose=0)
        model.save(str(tmp_path / "my_1st_savedmodel"))
    assert len(history.history["loss"]) == 2 and "val_loss" in history.history
    assert set(results) >= {"loss", "precision", "recall"}
    loaded = tf.saved_model.load(str(tmp_path / "my_1st_savedmodel"))
    serving = loaded.signatures["serving_default"]
    assert list(serving.structured_input_signature[1]) == ["input_xs"]
    assert serving.structured_input_signature[1]["input_xs"].shape.as_list() == [None, None, None, 4]
    outputs = serving(input_xs=tf.zeros((1, 64, 64, 4), tf.uint16))
    assert {name: tuple(t.shape) for name, t in outputs.items()} == {
        "predictions_softmax_tensor": (1, 64, 64, 2),
        "predictions_softmax_tensor_crop16": (1, 32, 32, 2),
        "predictions_softmax_tensor_crop32": (1, 0, 0, 2),
        "predictions_softmax_tensor_crop64": (1, 0, 0, 2),
        "predictions_softmax_tensor_crop96": (1, 0, 0, 2),
        "predictions_softmax_tensor_crop128": (1, 0, 0, 2),
    }
    # The exported model computes what the Keras model computes, cropped.
    sample = np.random.default_rng(0).integers(0, 10000, (1, 64, 64, 4)).astype(np.uint16)
    full = model({"input_xs": sample})["predictions"].numpy()
    exported = serving(input_xs=tf.constant(sample))
    np.testing.assert_allclose(exported["predictions_softmax_tensor_crop16"].numpy(), full[:, 16:48, 16:48],
                               rtol=1e-5, atol=1e-6)


def test_tensorflow_ops_on_symbolic_tensors_become_layers_created_once(tmp_path: Path):
    class OpsModel(ModelBase):
        def normalize_inputs(self, inputs):
            return {"input_a": tf.math.log1p(tf.cast(inputs["input_a"], tf.float32))}

        def get_outputs(self, normalized_inputs):
            x = normalized_inputs["input_a"]
            features = tf.keras.layers.Conv2D(4, 3, padding="same", name="features")(x)
            stacked = tf.concat([features, tf.nn.relu(-features)], axis=-1)
            scores = tf.keras.layers.Conv2D(3, 1, name="scores")(stacked)
            return {"predictions": tf.nn.softmax(scores, axis=-1)}

    spec = ({"input_a": tf.TensorSpec((None, 16, 16, 2), tf.uint8)}, {})
    model = OpsModel(spec, inference_cropping=[2])
    assert any(isinstance(layer, TensorFlowOpLayer) for layer in model.layers)
    n_weights = len(model.weights)
    assert n_weights == 4
    data = tf.data.Dataset.from_tensor_slices(
        ({"input_a": np.ones((8, 16, 16, 2), np.uint8)}, {"predictions": np.full((8, 16, 16, 3), 1 / 3, np.float32)})
    ).batch(4)
    model.compile(optimizer="adam", loss={"predictions": "categorical_crossentropy"})
    model.fit(data, epochs=1, verbose=0)
    model.export(tmp_path / "ops")
    assert len(model.weights) == n_weights  # training and export created no new layers
    serving = tf.saved_model.load(str(tmp_path / "ops")).signatures["serving_default"]
    outputs = serving(input_a=tf.ones((1, 20, 24, 2), tf.uint8))
    # The last TensorFlow op names the output when it has no Keras layer name of its own.
    assert {name: tuple(t.shape) for name, t in outputs.items()} == {
        next(name for name in model.inference_output_names if "crop" not in name): (1, 20, 24, 3),
        crop_name(next(n for n in model.inference_output_names if "crop" not in n), 2): (1, 16, 20, 3)}


def test_fcnn_outputs_and_cropping_names():
    spec = ({"input_xs": tf.TensorSpec((None, 64, 64, 3), tf.uint16)}, {})
    model = FCNNModel(spec, n_classes=4, inference_cropping=(16, 32))
    assert model.dataset_input_keys == ["input_xs"]
    assert model.inputs_shapes == {"input_xs": (64, 64, 3)}
    assert model.output_names_by_key == {"predictions": "predictions_softmax_tensor"}
    assert sorted(model.inference_output_names) == ["predictions_softmax_tensor", "predictions_softmax_tensor_crop16",
                                                    "predictions_softmax_tensor_crop32"]
    outputs = model.inference_model({"input_xs": tf.zeros((2, 96, 128, 3), tf.uint16)})
    assert tuple(outputs["predictions_softmax_tensor_crop32"].shape) == (2, 32, 64, 4)
    np.testing.assert_allclose(outputs["predictions_softmax_tensor"].numpy().sum(axis=-1), 1.0, rtol=1e-5)
    assert is_chief(tf.distribute.get_strategy())


def test_element_spec_forms_and_input_keys():
    class Identity(ModelBase):
        def get_outputs(self, normalized_inputs):
            return {"predictions": tf.keras.layers.Conv2D(2, 1, name="out")(normalized_inputs["input_b"])}

    plain = {"input_a": tf.TensorSpec((None, 8, 8, 1), tf.float32), "input_b": tf.TensorSpec((None, 8, 8, 2),
                                                                                             tf.int16),
             "predictions": tf.TensorSpec((None, 8, 8, 2), tf.float32)}
    assert Identity(plain).dataset_input_keys == ["input_a", "input_b"]
    assert Identity((plain, {}), input_keys=["input_b"]).inputs_dtypes == {"input_b": "int16"}
    with pytest.raises(ModelError, match="no input input_c"):
        Identity((plain, {}), input_keys=["input_c"])


def test_model_errors():
    spec = ({"input_xs": tf.TensorSpec((None, 8, 8, 1), tf.float32)}, {})

    class NoOutputs(ModelBase):
        pass

    class NotADict(ModelBase):
        def get_outputs(self, normalized_inputs):
            return normalized_inputs["input_xs"]

    with pytest.raises(NotImplementedError, match="must implement get_outputs"):
        NoOutputs(spec)
    with pytest.raises(ModelError, match="must return a non-empty dict"):
        NotADict(spec)
    with pytest.raises(ModelError, match="at least 2 classes"):
        FCNNModel(spec, n_classes=1)


def test_exported_names_and_model_json_agree_when_a_layer_name_is_another_key(tmp_path: Path):
    """'predictions' comes from a layer named 'scores' while another output's key is 'scores'."""
    from otbtf_qgis.core.models.export import export_model

    class Colliding(ModelBase):
        def get_outputs(self, normalized_inputs):
            x = normalized_inputs["input_xs"]
            features = tf.keras.layers.Conv2D(3, 3, padding="same", name="feat")(x)
            scores = tf.keras.layers.Conv2D(2, 1, activation="softmax", name="scores")(features)
            return {"predictions": scores, "scores": features}

    model = Colliding(({"input_xs": tf.TensorSpec((None, 16, 16, 1), tf.float32)}, {}), inference_cropping=(2,))
    assert model.output_names_by_key == {"predictions": "predictions", "scores": "feat"}
    description = export_model(model, tmp_path / "model", {"input_xs": (16, 16)})
    signature = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"]
    exported = sorted(signature.structured_outputs)
    assert exported == sorted(description["outputs"]) == ["feat", "feat_crop2", "predictions", "predictions_crop2"]
    assert description["class_output"] == "predictions"
    assert description["cropped_outputs"]["predictions_crop2"]["output"] == "predictions"
    assert description["serving"]["output_name"] in exported
    outputs = signature(input_xs=tf.ones((1, 16, 16, 1)))
    assert outputs["predictions"].shape[-1] == 2 and outputs["predictions_crop2"].shape[1:3] == (12, 12)
