"""A U-Net with a full-resolution level: the FCNN's encoder and decoder, sharper.

The FCNN of OTBTF's documentation starts with a stride-2 convolution and ends with a
stride-2 transposed convolution of kernel 3: its finest features are at half resolution,
and a kernel that the stride does not divide overlaps unevenly (the "checkerboard" of
transposed convolutions). This model adds a 3×3 convolution at full resolution before
the first stride-2 level, joins it back before the classifier, upsamples with 4×4
transposed convolutions (a kernel the stride divides) and classifies with a 3×3
convolution at full resolution, so that nothing limits the map to half resolution. (With
sparse labels, whether narrow features reach the map depends more on the training
patches: see the ``mix`` of :func:`~otbtf_qgis.core.training.pipeline.make_augmentation_fn`.)
It takes the same inputs as the FCNN (one source, patch size a multiple of 16) and the
same normalisation, and costs about twice its compute.
"""

from __future__ import annotations

from typing import Any

import keras

from otbtf_qgis.core.models.base import TensorDict
from otbtf_qgis.core.models.export import TARGET_KEY
from otbtf_qgis.core.models.fcnn import OUTPUT_SOFTMAX_NAME, FCNNModel


class UNetModel(FCNNModel):
    """The FCNN with a full-resolution level and 4×4 upsampling (see the module docstring).

    Args: as :class:`~otbtf_qgis.core.models.fcnn.FCNNModel`.
    """

    def get_outputs(self, normalized_inputs: TensorDict) -> TensorDict:
        """Encoder 16 (full res), 32, 64, 64 filters; decoder back to full resolution with additive skips."""
        name = self.dataset_input_keys[0]

        def conv(inp: Any, depth: int, stride: int, layer_name: str) -> Any:
            return keras.layers.Conv2D(filters=depth, kernel_size=3, strides=stride, activation="relu",
                                       padding="same", name=layer_name)(inp)

        def up(inp: Any, depth: int, layer_name: str) -> Any:
            return keras.layers.Conv2DTranspose(filters=depth, kernel_size=4, strides=2, activation="relu",
                                                padding="same", name=layer_name)(inp)

        full = conv(normalized_inputs[name], 16, 1, "conv0")
        half = conv(full, 32, 2, "conv1")
        quarter = conv(half, 64, 2, "conv2")
        eighth = conv(quarter, 64, 2, "conv3")
        up_quarter = up(eighth, 64, "up2") + quarter
        up_half = up(up_quarter, 32, "up1") + half
        up_full = up(up_half, 16, "up0") + full
        predictions = keras.layers.Conv2D(filters=self.n_classes, kernel_size=3, padding="same", activation="softmax",
                                          name=OUTPUT_SOFTMAX_NAME)(up_full)
        return {TARGET_KEY: predictions}
