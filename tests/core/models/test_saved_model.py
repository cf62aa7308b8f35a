from __future__ import annotations

import json

import numpy as np
import pytest

from otbtf_qgis.core.errors import InputError, ModelError
from otbtf_qgis.core.models.saved_model import ServingModel, TensorInfo, parse_constant, read_model_metadata


def test_metadata_defaults(tmp_path):
    assert read_model_metadata(tmp_path).default_output() == ""
    (tmp_path / "otbtf_model.json").write_text(json.dumps({
        "format": "otbtf_qgis-model/1",
        "inputs": {"input_xs": {"bands": 4, "dtype": "uint16", "patch_size": [64, 64]},
                   "input_pan": {"bands": 1, "patch_size": [128, 128]}},
        "class_names": ["water", "crop"],
        "class_colors": [[0, 0, 255], [255, 255, 0]],
        "cropped_outputs": {"p_crop16": {"output": "p", "crop": 16, "receptive_field": [64, 64],
                                         "expression_field": [32, 32]}},
        "serving": {"output_name": "p_crop16", "receptive_field": [64, 64], "expression_field": [32, 32],
                    "receptive_fields": {"input_pan": [128, 96]}},
    }))
    metadata = read_model_metadata(tmp_path)
    assert metadata.default_output() == "p_crop16"
    assert metadata.class_colors == ((0, 0, 255), (255, 255, 0))
    assert metadata.receptive_field("input_xs", 1, "p") == (64, 64)
    assert metadata.receptive_field("input_pan", 2, "p") == (128, 96)
    assert metadata.receptive_field("input_xs", 2, "p") == (64, 64)  # from the input's patch size
    assert metadata.expression_field("p_crop16") == (32, 32)
    assert metadata.expression_field("p") is None
    (tmp_path / "otbtf_model.json").write_text("{broken")
    with pytest.raises(ModelError, match="is not valid JSON"):
        read_model_metadata(tmp_path)


def test_parse_constant():
    scalar = TensorInfo("rate", (), "float32")
    assert parse_constant("0.5", scalar, 4).shape == () and parse_constant("0.5", scalar, 4) == np.float32(0.5)
    batch = TensorInfo("is_training", (None,), "bool")
    np.testing.assert_array_equal(parse_constant("false", batch, 3), [False, False, False])
    counts = TensorInfo("k", (None, 2), "int32")
    assert parse_constant("3", counts, 1).tolist() == [[3, 3]]
    with pytest.raises(InputError, match=r"'k=3.5' does not fit the model input k"):
        parse_constant("3.5", counts, 1)
    with pytest.raises(InputError, match="is_training=maybe"):
        parse_constant("maybe", batch, 1)


def test_signature_inspection(valid_model):
    folder, _ = valid_model
    model = ServingModel(folder)
    assert model.signature_name == "serving_default"
    assert model.inputs["input_xs"] == TensorInfo("input_xs", (None, None, None, 3), "float32")
    assert sorted(model.outputs) == ["features", "scores"]
    assert model.input_names() == ["input_xs"]
    function = model.tile_function([("input_xs", (1, 20, 22, 3), "float32")], {}, ["features"])
    (features,) = function(np.zeros((1, 20, 22, 3), np.float32))
    assert features.shape == (1, 14, 16, 3)


@pytest.mark.parametrize(("gpus", "split"), [([], True), (["/physical_device:GPU:0"], False)])
def test_threads_are_split_between_tiles_only_without_a_gpu(monkeypatch, gpus, split):
    import tensorflow as tf

    from otbtf_qgis.core.models import saved_model

    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(saved_model.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.threading, "set_intra_op_parallelism_threads",
                        lambda n: calls.append(("intra", n)))
    monkeypatch.setattr(tf.config.threading, "set_inter_op_parallelism_threads",
                        lambda n: calls.append(("inter", n)))
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth",
                        lambda device, grow: calls.append(("growth " + device, grow)))
    saved_model.configure_threads(2)
    assert calls == ([("intra", 4), ("inter", 2)] if split else [("growth /physical_device:GPU:0", True)])
