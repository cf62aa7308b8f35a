from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from otbtf_qgis.core.data.description import describe_dataset
from otbtf_qgis.core.data.loading import open_dataset
from otbtf_qgis.core.errors import DatasetError, InputError

from tests.core.conftest import make_raster
from tests.core.patches_data import make_patches_folder


def test_describe_a_patches_folder(tmp_path: Path):
    folder = make_patches_folder(tmp_path, "train", n_points=9, sizes="5x3,2")
    description = describe_dataset(folder)
    assert description.kind == "patches" and description.path == str(folder) and description.n_samples == 9
    assert description.shapes == {"xs": (3, 5, 4), "xs2": (2, 2, 1), "class": (1, 1, 1)}
    assert description.dtypes == {"xs": "uint16", "xs2": "float32", "class": "int32"}
    assert description.class_mapping == {"crop": 0, "tree": 1, "water": 2}
    assert description.ignore_label is None
    assert [(f.key, f.path.name, f.patch_size, f.count) for f in description.files] == [
        ("xs", "xs_patches.tif", (5, 3), 9), ("xs2", "xs2_patches.tif", (2, 2), 9),
        ("class", "labels.tif", (1, 1), 9)]
    assert description.sample_bytes == 3 * 5 * 4 * 2 + 2 * 2 * 1 * 4 + 4
    assert description.manifest is not None and description.manifest["n_samples"] == 9
    assert describe_dataset(folder / "manifest.json") == description


def test_describe_otbtf_patches_without_manifest(tmp_path: Path):
    make_raster(tmp_path / "xs_patches.tif", np.zeros((40, 8, 3), np.uint16), tiled=False)
    make_raster(tmp_path / "labels_patches.tif", np.zeros((40, 8, 1), np.uint8), tiled=False)
    description = describe_dataset(tmp_path)
    assert description.n_samples == 5
    assert description.shapes == {"labels": (8, 8, 1), "xs": (8, 8, 3)}


def test_describe_errors_name_the_parameter(tmp_path: Path):
    with pytest.raises(InputError, match="does not exist") as error:
        describe_dataset(tmp_path / "missing", "VALID_DATA")
    assert error.value.parameter == "VALID_DATA"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="is not a dataset folder"):
        describe_dataset(tmp_path / "empty")
    records = tmp_path / "records"
    records.mkdir()
    (records / "output_shapes.json").write_text(json.dumps({"xs": [2, 2, 1]}))
    (records / "output_types.json").write_text(json.dumps({"xs": "uint8"}))
    with pytest.raises(DatasetError, match=r"has no \*\.records shard, so no sample"):
        describe_dataset(records)
    (records / "0.records").write_bytes(b"")
    with pytest.raises(DatasetError, match="hold no sample"):
        describe_dataset(records)
    folder = make_patches_folder(tmp_path, "train", n_points=4)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["n_samples"] = 5
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="announces 5 samples but the patches-images hold 4"):
        describe_dataset(folder)
    (folder / "xs_patches.tif").unlink()
    with pytest.raises(DatasetError, match=r"patches-image .*xs_patches\.tif' of key 'xs' is missing"):
        describe_dataset(folder)


def test_open_dataset_batches_dicts_in_stored_dtypes(tmp_path: Path):
    folder = make_patches_folder(tmp_path, "train", n_points=10)
    dataset = open_dataset(folder, batch_size=4, seed=1)
    batches = list(dataset)
    assert len(batches) == 2  # the remainder of 2 is dropped
    assert {k: (v.shape.as_list(), v.dtype.name) for k, v in batches[0].items()} == {
        "xs": ([4, 3, 5, 4], "uint16"), "xs2": ([4, 2, 2, 1], "float32"), "class": ([4, 1, 1, 1], "int32")}
    from_description = list(open_dataset(describe_dataset(folder), batch_size=4, seed=1))
    for batch, again in zip(batches, from_description, strict=True):
        for key, values in batch.items():
            np.testing.assert_array_equal(values.numpy(), again[key].numpy())
    with pytest.raises(DatasetError, match="holds 10 samples, fewer than one batch of 16"):
        open_dataset(folder, batch_size=16)
    with pytest.raises(InputError) as error:
        open_dataset(folder, batch_size=0)
    assert error.value.parameter == "BATCH_SIZE"
