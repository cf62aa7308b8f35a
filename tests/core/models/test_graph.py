"""Receptive field of real TensorFlow models: analytic (from the graph) vs probing, the FCNN table, the job."""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from otbtf_qgis.core.errors import ModelError
from otbtf_qgis.core.jobs.configs.receptivefield import ReceptiveFieldConfig
from otbtf_qgis.core.models.base import ModelBase
from otbtf_qgis.core.models.fcnn import FCNNModel
from otbtf_qgis.core.models.graph import (
    _UnsupportedError,
    analyze_function,
    analyze_saved_model,
    keras_model_function,
    probe,
    walk_graph,
)
from otbtf_qgis.core.models.receptivefield import run
from otbtf_qgis.core.models.report import report_markdown
from otbtf_qgis.core.progress import NullReporter


@pytest.fixture(scope="module")
def fcnn_savedmodel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = ({"input_xs": tf.TensorSpec((None, 64, 64, 4), tf.uint16)}, {})
    folder = tmp_path_factory.mktemp("fcnn") / "model"
    FCNNModel(spec, n_classes=3).export(folder)
    return folder


def test_fcnn_gives_the_documentation_table(fcnn_savedmodel: Path):
    report = analyze_saved_model(fcnn_savedmodel, 64)
    assert report.method == "analytic"
    rows = [(g.name, g.kind, g.kernel, g.stride, g.size[0], g.valid[0]) for g in report.layers]
    assert rows == [
        ("conv1", "Conv2D", (3, 3), (2, 2), 32, 31),
        ("conv2", "Conv2D", (3, 3), (2, 2), 16, 15),
        ("conv3", "Conv2D", (3, 3), (2, 2), 8, 7),
        ("conv4", "Conv2D", (3, 3), (2, 2), 4, 3),
        ("tconv1", "Conv2DTranspose", (3, 3), (2, 2), 8, 5),
        ("tconv2", "Conv2DTranspose", (3, 3), (2, 2), 16, 9),
        ("tconv3", "Conv2DTranspose", (3, 3), (2, 2), 32, 17),
        ("predictions_softmax_tensor", "Conv2DTranspose", (3, 3), (2, 2), 64, 33),
    ]
    base = report.outputs["predictions_softmax_tensor"]
    assert (base.size, base.valid_rows, base.valid_cols) == ((64, 64), (15, 48), (15, 48))
    assert report.size_step == 16
    assert report.recommended_output == "predictions_softmax_tensor_crop16"
    assert (report.receptive_field, report.expression_field) == ((64, 64), (32, 32))
    bigger = analyze_saved_model(fcnn_savedmodel, 256)
    assert bigger.outputs["predictions_softmax_tensor"].valid_size == (225, 225)
    assert (bigger.recommended_output, bigger.expression_field) == ("predictions_softmax_tensor_crop16", (224, 224))


def test_probing_agrees_with_the_fcnn_analysis(fcnn_savedmodel: Path):
    loaded = tf.saved_model.load(str(fcnn_savedmodel))
    probed = probe(loaded.signatures["serving_default"], {"input_xs": tf.TensorSpec([1, 64, 64, 4], tf.uint16)})
    assert probed["predictions_softmax_tensor"].valid_rows == (15, 48)
    assert probed["predictions_softmax_tensor_crop16"].valid_size == (32, 32)


STACKS = [
    [("conv", 5, 1, 1, "same"), ("pool", 2, 2, 1, "valid"), ("conv", 3, 1, 2, "same"), ("tconv", 4, 2, 1, "same")],
    [("conv", 3, 2, 1, "valid"), ("conv", 3, 1, 1, "same"), ("tconv", 3, 2, 1, "valid")],
    [("conv", 7, 3, 1, "same"), ("tconv", 3, 3, 1, "same"), ("pool", 3, 1, 1, "same")],
    [("dwconv", 3, 1, 1, "same"), ("conv", 1, 1, 1, "same"), ("pad", 3, 0, 0, ""), ("conv", 3, 1, 3, "valid")],
]


def _stack_model(layers: list[tuple[str, int, int, int, str]], bands: int = 2) -> keras.Model:
    inputs = keras.Input((None, None, bands), name="x")
    x = inputs
    for kind, size, stride, dilation, padding in layers:
        if kind == "conv":
            x = keras.layers.Conv2D(3, size, strides=stride, dilation_rate=dilation, padding=padding)(x)
        elif kind == "dwconv":
            x = keras.layers.DepthwiseConv2D(size, strides=stride, padding=padding)(x)
        elif kind == "tconv":
            x = keras.layers.Conv2DTranspose(3, size, strides=stride, padding=padding)(x)
        elif kind == "pool":
            x = keras.layers.AveragePooling2D(size, strides=stride, padding=padding)(x)
        elif kind == "pad":
            x = keras.layers.ZeroPadding2D(size)(x)
    return keras.Model({"x": inputs}, {"y": x})


@pytest.mark.parametrize("index", range(len(STACKS)))
def test_analytic_masks_match_probing_on_random_stacks(index: int):
    keras.utils.set_random_seed(index)
    model = _stack_model(STACKS[index])
    function = keras_model_function(model)
    specs = {"x": tf.TensorSpec([1, 48, 40, 2], tf.float32)}
    analytic, _, _ = walk_graph(function, specs)
    probed = probe(function, specs)
    assert analytic["y"].size == probed["y"].size
    assert (analytic["y"].valid_rows, analytic["y"].valid_cols) == (probed["y"].valid_rows, probed["y"].valid_cols)


def test_unknown_operations_fall_back_to_probing():
    class Resizing(ModelBase):
        def get_outputs(self, normalized_inputs):
            x = tf.keras.layers.Conv2D(4, 3, padding="same", name="conv")(normalized_inputs["input_xs"])
            x = tf.keras.layers.UpSampling2D(2, name="upsample")(x)  # a resize: geometry not modelled
            return {"predictions": tf.keras.layers.Conv2D(2, 3, padding="same", name="out")(x)}

    model = Resizing(({"input_xs": tf.TensorSpec((None, 32, 32, 1), tf.float32)}, {}), inference_cropping=(4, 8))
    report = analyze_function(keras_model_function(model.inference_model),
                              {"input_xs": tf.TensorSpec([1, 32, 32, 1], tf.float32)}, "out", NullReporter())
    assert report.method == "probing"
    output = report.outputs["out"]
    # one "same" 3x3 conv at input resolution (1 pixel → 2 after upsampling) then one at output resolution (1 pixel)
    assert output.size == (64, 64)
    assert output.valid_rows == (3, 61)
    assert report.recommended_output == "out_crop4"
    assert "probing" in report_markdown(report)


def test_receptivefield_job(fcnn_savedmodel: Path, tmp_path: Path):
    result = run(ReceptiveFieldConfig(model=str(fcnn_savedmodel), input_size=64), NullReporter())
    assert (result["output_name"], result["rfield"], result["efield"]) == ("predictions_softmax_tensor_crop16", 64, 32)
    assert "| conv1 | Conv2D | 3 | 2 | 32 | 31 |" in result["table"]
    assert "| predictions_softmax_tensor | Conv2DTranspose | 3 | 2 | 64 | 33 |" in result["table"]
    assert "<table" in result["html"]
    with pytest.raises(ModelError, match="is not a SavedModel"):
        run(ReceptiveFieldConfig(model=str(tmp_path), input_size=64), NullReporter())
    with pytest.raises(ModelError, match="does not accept inputs"):
        analyze_saved_model(fcnn_savedmodel, 40)


def test_saved_models_open_as_serving_opens_them(fcnn_savedmodel: Path, tmp_path: Path):
    """The analysis loads SavedModels with the serving rules: a broken JSON is an error, any single signature works."""
    broken = tmp_path / "broken"
    shutil.copytree(fcnn_savedmodel, broken)
    (broken / "otbtf_model.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ModelError, match=r"otbtf_model\.json' is not valid JSON"):
        run(ReceptiveFieldConfig(model=str(broken), input_size=64), NullReporter())

    module = tf.Module()
    module.pool = tf.function(lambda x: {"y": tf.nn.avg_pool2d(x, 3, 1, "SAME")},
                              input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="x")])
    other = tmp_path / "other_signature"
    tf.saved_model.save(module, str(other), signatures={"pool": module.pool})
    report = analyze_saved_model(other, 16)
    assert (report.outputs["y"].size, report.outputs["y"].valid_rows) == ((16, 16), (1, 15))


def test_morphological_dilation_and_erosion_shrink_like_convolutions():
    filters = tf.constant(np.random.default_rng(0).random((3, 5, 2)), tf.float32)

    def function(x):
        # rates (2, 1): a 5x5 reach; "same" keeps 30x28 with 2 pixels of padding on each side
        y = tf.nn.dilation2d(x, filters, [1, 1, 1, 1], "SAME", "NHWC", [1, 2, 1, 1])
        # an erosion is a dilation of the negated input: "valid", 3x5, gives 28x24
        return {"y": tf.nn.erosion2d(y, filters, [1, 1, 1, 1], "VALID", "NHWC", [1, 1, 1, 1])}

    outputs, layers, _ = walk_graph(function, {"x": tf.TensorSpec([1, 30, 28, 2], tf.float32)})
    y = outputs["y"]
    assert (y.size, y.valid_rows, y.valid_cols) == ((28, 24), (2, 26), (2, 22))
    assert [(g.kind, g.kernel, g.size, g.valid) for g in layers] == [
        ("Dilation2D", (3, 5), (30, 28), (26, 24)), ("Dilation2D", (3, 5), (28, 24), (24, 20))]


def test_tiles_of_values_and_of_images():
    def function(x, s):
        channels = tf.tile(tf.nn.avg_pool2d(x, 3, 1, "SAME"), [1, 1, 1, 3])  # channels only: masks kept
        plane = tf.broadcast_to(s[:, None, None, None], [1, 10, 12, 1])  # a value at every pixel: all valid
        return {"channels": channels, "plane": plane, "pooled_plane": tf.nn.avg_pool2d(plane, 3, 1, "SAME")}

    specs = {"x": tf.TensorSpec([1, 10, 12, 1], tf.float32), "s": tf.TensorSpec([1], tf.float32)}
    outputs, _, _ = walk_graph(function, specs)
    valid = {name: (o.size, o.valid_rows, o.valid_cols) for name, o in outputs.items()}
    assert valid == {"channels": ((10, 12), (1, 9), (1, 11)), "plane": ((10, 12), (0, 10), (0, 12)),
                     "pooled_plane": ((10, 12), (1, 9), (1, 11))}
    with pytest.raises(_UnsupportedError, match="Tile along a spatial axis"):
        walk_graph(lambda x: {"y": tf.tile(x, [1, 2, 1, 1])}, {"x": specs["x"]})
