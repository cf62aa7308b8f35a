"""OTBTF's layers (``otbtf.layers``): exact values, serialisation, geometry, and a model file trained then served."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from osgeo import gdal

from otbtf_qgis.core.jobs.configs.trainmodel import TrainModelConfig
from otbtf_qgis.core.models import layers
from otbtf_qgis.core.models.base import ModelBase
from otbtf_qgis.core.models.custom import install_otbtf_aliases
from otbtf_qgis.core.models.graph import keras_model_function, walk_graph
from otbtf_qgis.core.serving import ServeConfig, SourceConfig, serve
from otbtf_qgis.core.training.trainmodel import run
from tests.core.conftest import make_raster
from tests.core.training_data import make_samples, write_patches_folder


def image(array: np.ndarray) -> tf.Tensor:
    """A 2-D array as a ``[1, rows, cols, 1]`` tensor."""
    return tf.constant(array[None, :, :, None])


# --------------------------------------------------------------------------------------------- values


def test_dilated_mask_grows_a_nodata_pixel_into_a_square():
    data = np.ones((5, 5), np.float32)
    data[2, 2] = -1
    mask = layers.DilatedMask(nodata_value=-1, radius=1)(image(data))
    assert mask.dtype == tf.uint8 and mask.shape == (1, 5, 5, 1)
    expected = np.zeros((5, 5), np.uint8)
    expected[1:4, 1:4] = 1
    np.testing.assert_array_equal(mask[0, :, :, 0], expected)
    # radius 0: the nodata pixel alone; radius 2: the whole image
    np.testing.assert_array_equal(layers.DilatedMask(-1, 0)(image(data))[0, :, :, 0], data == -1)
    np.testing.assert_array_equal(layers.DilatedMask(-1, 2)(image(data))[0, :, :, 0], np.ones((5, 5)))
    # at a corner the square is cut by the image border ("same" size, outside counts as valid)
    corner = np.ones((5, 5), np.float32)
    corner[0, 0] = -1
    expected = np.zeros((5, 5), np.uint8)
    expected[:2, :2] = 1
    np.testing.assert_array_equal(layers.DilatedMask(-1, 1)(image(corner))[0, :, :, 0], expected)
    # no nodata pixel, no mask
    assert int(tf.reduce_sum(layers.DilatedMask(-1, 3)(image(np.ones((6, 7), np.float32))))) == 0


def test_dilated_mask_compares_nodata_in_the_input_type():
    data = np.array([[0, 7], [9, 65535]], np.uint16)
    np.testing.assert_array_equal(layers.DilatedMask(0, 0)(image(data))[0, :, :, 0], [[1, 0], [0, 0]])
    # -9999 is not a uint16 value: it matches nothing (no wrap onto 55537)
    wrapped = np.full((3, 3), 55537, np.uint16)
    assert int(tf.reduce_sum(layers.DilatedMask(-9999, 1)(image(wrapped)))) == 0
    assert int(tf.reduce_sum(layers.DilatedMask(0.5, 0)(image(data)))) == 0
    floats = np.array([[np.nan, 0.1], [1.0, 2.0]], np.float32)
    np.testing.assert_array_equal(layers.DilatedMask(float("nan"), 0)(image(floats))[0, :, :, 0], [[1, 0], [0, 0]])
    np.testing.assert_array_equal(layers.DilatedMask(0.1, 0)(image(floats))[0, :, :, 0], [[0, 1], [0, 0]])
    with pytest.raises(ValueError, match="non-negative integer"):
        layers.DilatedMask(0, -1)


def test_apply_mask_replaces_exactly_the_masked_pixels():
    values = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    mask = np.zeros((2, 3, 4, 1), np.uint8)
    mask[0, 1, 2] = 1
    mask[1, 0, 0] = 1
    mask[1, 2, 3] = 2  # only 1 means nodata
    out = layers.ApplyMask(out_nodata=-9)((tf.constant(mask), tf.constant(values))).numpy()
    expected = values.copy()
    expected[0, 1, 2, :] = -9
    expected[1, 0, 0, :] = -9
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    # a list works too, and an integer input keeps its type when the nodata fits it
    labels = tf.constant(np.array([[1, 2], [0, 1]], np.int32)[None, :, :, None])
    masked = layers.ApplyMask(255)([image(np.array([[0, 1], [0, 0]], np.uint8)), labels])
    assert masked.dtype == tf.int32
    np.testing.assert_array_equal(masked[0, :, :, 0], [[1, 255], [0, 1]])
    with pytest.raises(ValueError, match="does not fit the uint8 input"):
        layers.ApplyMask(-1)((image(np.zeros((2, 2), np.uint8)), image(np.ones((2, 2), np.uint8))))


def test_scalars_tile_repeats_the_scalars_of_each_sample():
    reference = tf.zeros((2, 2, 3, 5))
    first, second = tf.constant([1.5, -2.0]), tf.constant([10.0, 20.0])
    out = layers.ScalarsTile()([reference, [first, second]])
    assert out.shape == (2, 2, 3, 2) and out.dtype == tf.float32
    expected = np.empty((2, 2, 3, 2), np.float32)
    expected[0] = [1.5, 10.0]
    expected[1] = [-2.0, 20.0]
    np.testing.assert_array_equal(out, expected)
    # [batch, k] scalars give k channels; mixed dtypes give float32; a 0-d tensor is shared by every sample
    mixed = layers.ScalarsTile()([reference, [tf.constant([[1.0, 2.0], [3.0, 4.0]]), tf.constant([5, 6]),
                                              tf.constant(7.0)]])
    assert mixed.shape == (2, 2, 3, 4) and mixed.dtype == tf.float32
    np.testing.assert_array_equal(mixed[:, 1, 2], [[1, 2, 5, 7], [3, 4, 6, 7]])
    integers = layers.ScalarsTile()([reference, tf.constant([3, 4], tf.int32)])
    assert integers.dtype == tf.int32 and integers.shape == (2, 2, 3, 1)
    np.testing.assert_array_equal(integers[:, :, :, 0], [np.full((2, 3), 3), np.full((2, 3), 4)])


def test_argmax_and_max_over_the_channels():
    scores = tf.constant([[[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]],
                           [[0.3, 0.3, 0.4], [0.4, 0.4, 0.2]]]])  # (1, 2, 2, 3); the last pixel is a tie
    argmax = layers.Argmax()(scores)
    assert argmax.dtype == tf.int32 and argmax.shape == (1, 2, 2, 1)
    np.testing.assert_array_equal(argmax[0, :, :, 0], [[1, 0], [2, 0]])  # a tie gives the first index
    flat = layers.Argmax(name="classes", expand_last_dim=False)(scores)
    assert flat.dtype == tf.int32 and flat.shape == (1, 2, 2)
    np.testing.assert_array_equal(flat[0], [[1, 0], [2, 0]])
    maximum = layers.Max()(scores)
    assert maximum.dtype == tf.float32 and maximum.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(maximum[0, :, :, 0], [[0.7, 0.5], [0.4, 0.4]])


# --------------------------------------------------------------------------------------------- Keras


def test_layers_serialise_and_reload_from_a_keras_file(tmp_path: Path):
    assert layers.DilatedMask(3, 2, name="m").get_config()["nodata_value"] == 3.0
    assert layers.DilatedMask.from_config(layers.DilatedMask(3, 2).get_config()).radius == 2
    assert layers.ApplyMask.from_config(layers.ApplyMask(-5).get_config()).out_nodata == -5.0
    assert layers.Argmax.from_config(layers.Argmax(expand_last_dim=False).get_config()).expand_last_dim is False

    xs = keras.Input((None, None, 2), name="xs")
    angle = keras.Input((), name="angle")
    scores = keras.layers.Softmax()(xs)
    mask = layers.DilatedMask(0, 1, name="mask")(xs[:, :, :, :1])
    outputs = {"labels": layers.Argmax(name="labels")(scores), "confidence": layers.Max(name="confidence")(scores),
               "masked": layers.ApplyMask(-1, name="masked")((mask, scores)),
               "angle": layers.ScalarsTile(name="tiled")([xs, [angle]])}
    model = keras.Model({"xs": xs, "angle": angle}, outputs)
    model.save(tmp_path / "layers.keras")
    reloaded = keras.saving.load_model(tmp_path / "layers.keras")  # registered: no custom_objects needed
    data = np.random.default_rng(0).random((2, 6, 5, 2)).astype(np.float32)
    data[0, 3, 3, 0] = 0
    inputs = {"xs": data, "angle": np.array([0.5, 1.5], np.float32)}
    expected, got = model(inputs), reloaded(inputs)
    for key in outputs:
        np.testing.assert_array_equal(got[key], expected[key])
    assert int(np.sum(got["masked"][0] == -1)) == 9 * 2 and not np.any(got["masked"][1] == -1)


def test_otbtf_aliases_serve_the_layers_module():
    if not install_otbtf_aliases():
        pytest.skip("OTBTF itself is installed: 'otbtf' is its package")
    otbtf = importlib.import_module("otbtf")
    assert otbtf.layers is layers and sys.modules["otbtf.layers"] is layers
    from otbtf.layers import ApplyMask, Argmax, DilatedMask, Max, ScalarsTile

    assert (DilatedMask, ApplyMask, ScalarsTile, Argmax, Max) == (layers.DilatedMask, layers.ApplyMask,
                                                                  layers.ScalarsTile, layers.Argmax, layers.Max)


class LayersModel(ModelBase):
    """A ModelBase whose extra outputs are built with the layers, on the symbolic tensors of get_outputs."""

    def get_outputs(self, normalized_inputs):
        xs = normalized_inputs["input_xs"]
        features = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(xs)
        scores = tf.keras.layers.Conv2D(3, 1, activation="softmax", name="scores")(features)
        mask = layers.DilatedMask(nodata_value=0, radius=2, name="nodata")(xs[:, :, :, :1])
        return {"predictions": scores, "labels": layers.Argmax(name="labels")(scores),
                "confidence": layers.Max(name="confidence")(scores),
                "masked": layers.ApplyMask(out_nodata=-1, name="masked")((mask, scores))}


def test_model_base_with_the_layers_exports_a_servable_signature(tmp_path: Path):
    model = LayersModel(({"input_xs": tf.TensorSpec((None, 16, 16, 2), tf.float32)}, {}), inference_cropping=(2,))
    assert {"scores", "labels", "confidence", "masked", "labels_crop2", "masked_crop2"} <= set(
        model.inference_output_names)
    model.export(tmp_path / "model")
    signature = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"]
    assert signature.structured_outputs["labels"].dtype == tf.int32
    data = np.random.default_rng(1).random((1, 12, 10, 2)).astype(np.float32) + 0.5
    data[0, 5, 4, 0] = 0
    out = {k: v.numpy() for k, v in signature(input_xs=tf.constant(data)).items()}
    np.testing.assert_array_equal(out["labels"][..., 0], np.argmax(out["scores"], axis=-1))
    np.testing.assert_array_equal(out["confidence"][..., 0], np.max(out["scores"], axis=-1))
    np.testing.assert_array_equal(out["labels_crop2"], out["labels"][:, 2:-2, 2:-2])
    masked = np.zeros((12, 10), bool)
    masked[3:8, 2:7] = True  # 5x5 around the nodata pixel
    np.testing.assert_array_equal((out["masked"][0] == -1).all(axis=-1), masked)
    np.testing.assert_array_equal(out["masked"][0][~masked], out["scores"][0][~masked])


def test_receptive_field_analysis_follows_the_layers():
    model = LayersModel(({"input_xs": tf.TensorSpec((None, 16, 16, 2), tf.float32)}, {}), inference_cropping=(2,))
    outputs, geometry, step = walk_graph(keras_model_function(model.inference_model),
                                         {"input_xs": tf.TensorSpec([1, 20, 24, 2], tf.float32)})
    valid = {name: (o.size, o.valid_rows, o.valid_cols) for name, o in outputs.items()}
    assert valid["scores"] == valid["labels"] == valid["confidence"] == ((20, 24), (1, 19), (1, 23))
    assert valid["masked"] == ((20, 24), (2, 18), (2, 22))  # the 5x5 dilation reaches 2 pixels beyond
    assert valid["labels_crop2"] == ((16, 20), (0, 16), (0, 20))
    assert ("nodata", "MaxPool2D", (5, 5)) in [(g.name, g.kind, g.kernel) for g in geometry] and step == 1

    xs = keras.Input((None, None, 2), name="xs")
    angle = keras.Input((), name="angle")
    tiled = layers.ScalarsTile()([xs, [angle, angle]])
    smoothed = keras.layers.AveragePooling2D(3, strides=1, padding="same")(tiled)
    both = keras.layers.Conv2D(2, 5, padding="same")(keras.layers.Concatenate()([tiled, xs]))
    function = keras_model_function(keras.Model({"xs": xs, "angle": angle},
                                                {"tiled": tiled, "smoothed": smoothed, "both": both}))
    outputs, _, _ = walk_graph(function, {"xs": tf.TensorSpec([1, 10, 12, 2], tf.float32),
                                          "angle": tf.TensorSpec([1], tf.float32)})
    valid = {name: (o.size, o.valid_rows, o.valid_cols) for name, o in outputs.items()}
    assert valid["tiled"] == ((10, 12), (0, 10), (0, 12))  # the same at every pixel, whatever the tile
    assert valid["smoothed"] == ((10, 12), (1, 9), (1, 11))  # but padding reaches its borders
    assert valid["both"] == ((10, 12), (2, 8), (2, 10))


# --------------------------------------------------------------------------------------------- end to end


MODEL_FILE = '''
import tensorflow as tf
from otbtf import ModelBase, layers

N_CLASSES = 3


class MaskedClassifier(ModelBase):
    def __init__(self, dataset_element_spec, n_classes=N_CLASSES):
        self.n_classes = n_classes
        super().__init__(dataset_element_spec, inference_cropping=[4])

    def normalize_inputs(self, inputs):
        return {"input_xs": tf.cast(inputs["input_xs"], tf.float32) * 0.0001}

    def get_outputs(self, normalized_inputs):
        xs = normalized_inputs["input_xs"]
        net = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(xs)
        softmax = tf.keras.layers.Conv2D(self.n_classes, 1, activation="softmax", name="scores")(net)
        labels = layers.Argmax(name="labels")(softmax)
        confidence = layers.Max(name="confidence")(softmax)
        nodata = layers.DilatedMask(nodata_value=0, radius=1, name="nodata")(xs[:, :, :, :1])
        masked = layers.ApplyMask(out_nodata=255, name="masked_labels")((nodata, labels))
        return {"predictions": softmax, "labels": labels, "confidence": confidence, "masked_labels": masked}
'''


def read(path: Path) -> tuple[np.ndarray, str]:
    """A GeoTIFF as ``(rows, cols, bands)`` and its data type."""
    dataset = gdal.Open(str(path))
    array = dataset.ReadAsArray()
    array = array[:, :, None] if array.ndim == 2 else array.transpose(1, 2, 0)
    return array, gdal.GetDataTypeName(dataset.GetRasterBand(1).DataType)


def test_otbtf_model_file_with_layers_trains_and_serves_its_argmax(tmp_path: Path):
    images, labels = make_samples(16, 32, 3, seed=4)
    train = write_patches_folder(tmp_path / "train", images, labels)
    model_file = tmp_path / "masked_classifier.py"
    model_file.write_text(MODEL_FILE)
    result = run(TrainModelConfig(train_data=str(train), output_model=str(tmp_path / "model"), epochs=1,
                                  batch_size=8, learning_rate=0.01, seed=0, model_file=str(model_file),
                                  class_name="MaskedClassifier"))
    description = json.loads((tmp_path / "model" / "otbtf_model.json").read_text())
    assert description["training"]["model_class"] == "MaskedClassifier" and description["class_output"] == "scores"
    assert {"labels", "labels_crop4", "confidence_crop4", "masked_labels_crop4"} <= set(description["outputs"])
    assert result["serving"] == {"output_name": "scores_crop4", "receptive_field": [32, 32],
                                 "expression_field": [24, 24]}

    data, _ = make_samples(1, 64, 3, seed=5, cell=8)
    data = data[0]
    data[20, 30, 0] = 0  # a nodata pixel for the mask
    raster = make_raster(tmp_path / "image.tif", data)
    common = {"sources": (SourceConfig((str(raster),)),), "model": str(tmp_path / "model"), "tile_size": 24}
    served = serve(ServeConfig(output_names=("scores_crop4", "confidence_crop4"), output=str(tmp_path / "scores.tif"),
                               **common))
    classes = serve(ServeConfig(output_names=("labels_crop4", "masked_labels_crop4"), output_type="int32",
                                output=str(tmp_path / "labels.tif"), **common))
    assert (served["width"], served["height"]) == (classes["width"], classes["height"]) == (48, 48)
    scores, _ = read(tmp_path / "scores.tif")
    classes_out, dtype = read(tmp_path / "labels.tif")
    assert dtype == "Int32" and scores.shape == (48, 48, 4) and classes_out.shape == (48, 48, 2)
    argmax = np.argmax(scores[:, :, :3], axis=-1)
    assert len(np.unique(argmax)) > 1  # a real class map, not a constant
    np.testing.assert_array_equal(classes_out[:, :, 0], argmax)
    np.testing.assert_array_equal(scores[:, :, 3], np.max(scores[:, :, :3], axis=-1))
    # output pixel (r, c) is centred on input pixel (r + 4, c + 4): the nodata pixel and its 8 neighbours
    masked = np.zeros((48, 48), bool)
    masked[15:18, 25:28] = True
    np.testing.assert_array_equal(classes_out[:, :, 1] == 255, masked)
    np.testing.assert_array_equal(classes_out[:, :, 1][~masked], argmax[~masked])
