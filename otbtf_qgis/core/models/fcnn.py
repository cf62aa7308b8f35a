"""The FCNN of OTBTF's documentation: a small 4-level U-Net for semantic segmentation.

Encoder: four 3×3 convolutions of stride 2 (16, 32, 64, 64 filters, ReLU, "same"
padding); decoder: the mirrored 3×3 transposed convolutions of stride 2 with skip
connections (additions) to the encoder level of the same scale; the last transposed
convolution has ``n_classes`` filters and a softmax, in the layer
``predictions_softmax_tensor``. Input and output have the same size and spacing; the
size must be a multiple of 16 (:data:`SIZE_STEP`): the model checks the training patch
size and the number of input sources when it is built. On a 64-pixel input the padding-free output is the
central 33 pixels (64→31→15→7→3→5→9→17→33), so serving uses
``predictions_softmax_tensor_crop16`` with a receptive field of 64 and an expression
field of 32.

Inputs are normalised band by band, ``(x − mean) / std`` with the training data's
statistics baked into the model, or, as OTBTF's documentation does, multiplied by a
constant (0.0001 for 12-bit reflectances scaled to 0–10 000). The documentation's
constant leaves raw digital numbers (a Landsat level-1 scene: 6 000–9 000 with a spread
of a few hundred) nearly constant, and the network then learns slowly and unstably;
standardised bands train in a few epochs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import keras
import tensorflow as tf

from otbtf_qgis.core.errors import DatasetError, ModelError
from otbtf_qgis.core.models.base import DEFAULT_INFERENCE_CROPPING, ModelBase, TensorDict
from otbtf_qgis.core.models.export import TARGET_KEY

#: Input sizes the FCNN takes are multiples of this (four stride-2 levels joined by skip connections).
SIZE_STEP = 16
#: The name of the softmax layer, the prefix of the cropped outputs in the SavedModel.
OUTPUT_SOFTMAX_NAME = "predictions_softmax_tensor"
#: The documentation's scaling of 12-bit inputs into about [0, 1].
DEFAULT_INPUT_SCALE = 0.0001


class FCNNModel(ModelBase):
    """The documentation's fully-convolutional U-Net on one input source.

    Args:
        dataset_element_spec: ``ds.element_spec`` of the training dataset (see :class:`ModelBase`).
        n_classes: Number of classes of the softmax output.
        input_keys: The single input to use (default: the dataset's only input).
        inference_cropping: Margins of the cropped inference outputs.
        input_scale: Factor applied to the inputs after casting to float32
            (:data:`DEFAULT_INPUT_SCALE` for 12-bit data; 1/255 suits 8-bit data), when no
            statistics are given.
        input_mean: Per-band means: with ``input_std``, inputs become ``(x − mean) / std``.
        input_std: Per-band standard deviations (zeros are taken as 1).
        name: Model name.
    """

    def __init__(self, dataset_element_spec: Any, n_classes: int = 2, input_keys: Iterable[str] | None = None,
                 inference_cropping: Iterable[int] | None = DEFAULT_INFERENCE_CROPPING,
                 input_scale: float = DEFAULT_INPUT_SCALE, input_mean: Sequence[float] | None = None,
                 input_std: Sequence[float] | None = None, name: str | None = None) -> None:
        if n_classes < 2:
            raise ModelError(f"the FCNN needs at least 2 classes, got {n_classes}.", "N_CLASSES")
        if (input_mean is None) != (input_std is None) or (input_mean is not None and input_std is not None
                                                          and len(input_mean) != len(input_std)):
            raise ModelError("give the input means and standard deviations together, one of each per band.",
                             "MODEL_FILE")
        self.n_classes = int(n_classes)
        self.input_scale = float(input_scale)
        self.input_mean = None if input_mean is None else [float(v) for v in input_mean]
        self.input_std = None if input_std is None else [float(v) if v > 0 else 1.0 for v in input_std]
        super().__init__(dataset_element_spec, input_keys=input_keys, inference_cropping=inference_cropping,
                         name=name)

    def normalize_inputs(self, inputs: TensorDict) -> TensorDict:
        """Check the data fits the FCNN; cast the input to float32 and standardise or scale it.

        Raises:
            DatasetError: the data has several input sources, or patches whose size is
                not a multiple of :data:`SIZE_STEP` (parameter ``TRAIN_DATA``).
        """
        if len(inputs) != 1:
            raise DatasetError(f"the FCNN takes one image source, the data has {len(inputs)} ({', '.join(inputs)}). "
                               "Train a custom model (MODEL_FILE and CLASS_NAME) for several sources.", "TRAIN_DATA")
        name = next(iter(inputs))
        rows, cols = self.inputs_shapes[name][:2]
        if any(size is not None and size % SIZE_STEP for size in (rows, cols)):
            raise DatasetError(f"the FCNN needs patches whose size is a multiple of {SIZE_STEP}, '{name}' has "
                               f"{cols}×{rows}. Extract patches of 32, 64, 128, … pixels.", "TRAIN_DATA")
        values = tf.cast(inputs[name], tf.float32)
        if self.input_mean is not None and self.input_std is not None:
            bands = self.inputs_shapes[name][-1]
            if bands is not None and bands != len(self.input_mean):
                raise ModelError(f"{len(self.input_mean)} band statistics for an input of {bands} bands.",
                                 "TRAIN_DATA")
            return {name: (values - tf.constant(self.input_mean)) / tf.constant(self.input_std)}
        return {name: values * self.input_scale}

    def get_outputs(self, normalized_inputs: TensorDict) -> TensorDict:
        """The U-Net on the only input (checked by :meth:`normalize_inputs`); returns ``{"predictions": softmax}``."""
        name = self.dataset_input_keys[0]

        def conv(inp: Any, depth: int, layer_name: str) -> Any:
            return keras.layers.Conv2D(filters=depth, kernel_size=3, strides=2, activation="relu", padding="same",
                                       name=layer_name)(inp)

        def tconv(inp: Any, depth: int, layer_name: str, activation: str = "relu") -> Any:
            return keras.layers.Conv2DTranspose(filters=depth, kernel_size=3, strides=2, activation=activation,
                                                padding="same", name=layer_name)(inp)

        out_conv1 = conv(normalized_inputs[name], 16, "conv1")
        out_conv2 = conv(out_conv1, 32, "conv2")
        out_conv3 = conv(out_conv2, 64, "conv3")
        out_conv4 = conv(out_conv3, 64, "conv4")
        out_tconv1 = tconv(out_conv4, 64, "tconv1") + out_conv3
        out_tconv2 = tconv(out_tconv1, 32, "tconv2") + out_conv2
        out_tconv3 = tconv(out_tconv2, 16, "tconv3") + out_conv1
        predictions = tconv(out_tconv3, self.n_classes, OUTPUT_SOFTMAX_NAME, "softmax")
        return {TARGET_KEY: predictions}
