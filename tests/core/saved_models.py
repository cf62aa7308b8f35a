"""Small deterministic Keras 3 models exported as SavedModels, for the serving tests.

Every builder takes a destination folder, exports with ``model.export`` and returns the
Keras model (to compute reference outputs on whole images). TensorFlow is imported
inside the builders only: the Processing tests call them in a subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _keras() -> Any:
    import keras

    keras.utils.set_random_seed(7)
    return keras


def _write_json(folder: Path, data: dict[str, Any]) -> None:
    (folder / "otbtf_model.json").write_text(json.dumps({"format": "otbtf_qgis-model/1", **data}), encoding="utf-8")


def valid_model(folder: Path, bands: int = 3, metadata: bool = True) -> Any:
    """Valid convolutions 5x5 then 3x3: margin 6 (rf 14 -> ef 8). Outputs ``scores`` (softmax) and ``features``."""
    keras = _keras()
    x = keras.Input((None, None, bands), name="input_xs")
    y = keras.layers.Conv2D(4, 5, padding="valid", activation="tanh")(x)
    features = keras.layers.Conv2D(3, 3, padding="valid", name="features")(y)
    scores = keras.layers.Softmax(name="scores")(features)
    model = keras.Model({"input_xs": x}, {"scores": scores, "features": features})
    model.export(str(folder), verbose=False)
    if metadata:
        _write_json(folder, {
            "inputs": {"input_xs": {"bands": bands, "dtype": "float32", "patch_size": [14, 14]}},
            "outputs": ["scores", "features"],
            "class_output": "scores",
            "n_classes": 3,
            "class_names": ["water", "crop", "tree"],
            "serving": {"output_name": "scores", "receptive_field": [14, 14], "expression_field": [8, 8]},
        })
    return model


def unet_model(folder: Path, bands: int = 4) -> Any:
    """'same' convolutions with a stride-2 level and a transposed convolution, cropped by 8: rf 32, ef 16."""
    keras = _keras()
    x = keras.Input((None, None, bands), name="input_xs")
    scaled = keras.layers.Rescaling(1 / 1000)(x)  # uint16 reflectances to ~[0, 1]
    c1 = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(scaled)
    down = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(c1)
    up = keras.layers.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu")(down)
    merged = keras.layers.Concatenate()([up, c1])
    out = keras.layers.Conv2D(2, 3, padding="same", name="pred")(merged)
    cropped = keras.layers.Cropping2D(8, name="pred_crop8")(out)
    model = keras.Model({"input_xs": x}, {"pred": out, "pred_crop8": cropped})
    model.export(str(folder), verbose=False)
    _write_json(folder, {
        "inputs": {"input_xs": {"bands": bands, "dtype": "float32", "patch_size": [32, 32]}},
        "outputs": ["pred", "pred_crop8"],
        "cropped_outputs": {"pred_crop8": {"output": "pred", "crop": 8, "receptive_field": [32, 32],
                                           "expression_field": [16, 16]}},
        "serving": {"output_name": "pred_crop8", "receptive_field": [32, 32], "expression_field": [16, 16]},
    })
    return model


def gain_model(folder: Path) -> Any:
    """``valid_model``'s features times a scalar input ``gain`` (a user placeholder)."""
    keras = _keras()
    x = keras.Input((None, None, 3), name="input_xs")
    gain = keras.Input((), name="gain")
    y = keras.layers.Conv2D(2, 3, padding="valid")(x)
    scaled = y * keras.ops.reshape(gain, (-1, 1, 1, 1))
    model = keras.Model({"input_xs": x, "gain": gain}, {"scaled": scaled})
    model.export(str(folder), verbose=False)
    return model


def two_resolution_model(folder: Path) -> Any:
    """Inputs ``hi`` (1 band, fine pixels) and ``lo`` (2 bands, pixels twice as big), output on the ``lo`` grid.

    ``hi`` goes through a 2x2 stride-2 convolution, ``lo`` through a 1x1 one; both are
    concatenated and go through a valid 3x3 convolution: 8 output pixels need 2·8 + 4
    ``hi`` pixels and 8 + 2 ``lo`` pixels. In OTBTF's terms (ef 8, spcscale 2 on the ``hi``
    grid), pad = rf − (1 + (ef − 1)·s·k): rf_hi = 4 + 15 = 19, rf_lo = 2 + 8 = 10.
    """
    keras = _keras()
    hi = keras.Input((None, None, 1), name="hi")
    lo = keras.Input((None, None, 2), name="lo")
    h = keras.layers.Conv2D(3, 2, strides=2, padding="valid")(hi)
    low = keras.layers.Conv2D(3, 1)(lo)
    merged = keras.layers.Concatenate()([h, low])
    out = keras.layers.Conv2D(2, 3, padding="valid", name="out")(merged)
    model = keras.Model({"hi": hi, "lo": lo}, {"out": out})
    model.export(str(folder), verbose=False)
    _write_json(folder, {
        "inputs": {"hi": {"bands": 1, "dtype": "float32"}, "lo": {"bands": 2, "dtype": "float32"}},
        "outputs": ["out"],
        "serving": {"output_name": "out", "receptive_fields": {"hi": [19, 19], "lo": [10, 10]},
                    "expression_field": [8, 8]},
    })
    return model


def fixed_patch_model(folder: Path) -> Any:
    """A patch classifier with a fixed 7x7x3 input (rf from the signature), 3 class scores per patch."""
    keras = _keras()
    x = keras.Input((7, 7, 3), name="patch")
    y = keras.layers.Conv2D(4, 5, padding="valid", activation="tanh")(x)
    y = keras.layers.Conv2D(3, 3, padding="valid")(y)
    out = keras.layers.Reshape((3,), name="scores")(y)
    model = keras.Model({"patch": x}, {"scores": out})
    model.export(str(folder), verbose=False)
    return model


def predictions_model(folder: Path, bands: int = 4) -> Any:
    """The names of OTBTF's tutorial: input ``input_xs`` (uint16), outputs ``predictions`` and ``predictions_crop16``.

    A :class:`~otbtf_qgis.core.models.base.ModelBase` (so the crops are exported as OTBTF's
    ``<name>_crop<N>``): a 3x3 stride-2 convolution and its transposed convolution with
    a softmax. On 64 input pixels 61 output pixels are padding-free, so
    ``predictions_crop16`` serves with rf 64, ef 32 exactly whatever the tile size.
    """
    keras = _keras()
    import tensorflow as tf

    from otbtf_qgis.core.models.base import ModelBase

    class Predictions(ModelBase):
        def normalize_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
            return {"input_xs": tf.cast(inputs["input_xs"], tf.float32) * 0.001}

        def get_outputs(self, normalized_inputs: dict[str, Any]) -> dict[str, Any]:
            features = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu",
                                           name="conv")(normalized_inputs["input_xs"])
            scores = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same", activation="softmax",
                                                  name="predictions")(features)
            return {"predictions": scores}

    model = Predictions({"input_xs": tf.TensorSpec([None, 64, 64, bands], tf.uint16)}, inference_cropping=(16,))
    model.export(folder)
    return model
