from __future__ import annotations

import json
from pathlib import Path

import pytest

from otbtf_qgis.core.data.createtfrecords import CreateTFRecordsConfig, create_tfrecords
from otbtf_qgis.core.data.description import describe_dataset
from otbtf_qgis.core.errors import CancelledError, InputError

from tests.core.conftest import CancelAfter
from tests.core.patches_data import make_patches_folder


def convert(inputs: list[Path], output: Path, **kwargs) -> dict:
    return create_tfrecords(CreateTFRecordsConfig(inputs=tuple(str(p) for p in inputs), output_dir=str(output),
                                                  **kwargs))


def test_several_inputs_go_to_sub_folders(tmp_path: Path):
    folders = [make_patches_folder(tmp_path / "data", name, n_points=n, seed=i)
               for i, (name, n) in enumerate([("train", 12), ("valid", 5), ("test", 4)])]
    result = convert(folders, tmp_path / "tfr", n_samples_per_shard=5)
    assert {name: o["n_samples"] for name, o in result["outputs"].items()} == {"train": 12, "valid": 5, "test": 4}
    assert sorted(p.name for p in (tmp_path / "tfr").iterdir()) == ["test", "train", "valid"]
    assert describe_dataset(tmp_path / "tfr" / "valid").n_samples == 5
    assert sorted(p.name for p in (tmp_path / "tfr" / "train").iterdir()) == [
        "0.records", "1.records", "2.records", "manifest.json", "output_shapes.json", "output_types.json"]
    result = convert(folders[:1], tmp_path / "single", n_samples_per_shard=100, shuffle=False)
    manifest = json.loads((tmp_path / "single" / "manifest.json").read_text())
    patches = json.loads((folders[0] / "manifest.json").read_text())
    assert manifest["point_ids"] == patches["point_ids"] and manifest["shards"] == [{"file": "0.records",
                                                                                      "n_samples": 12}]
    assert result["outputs"]["train"]["folder"] == str(tmp_path / "single")


def test_overwrite_rule(tmp_path: Path):
    folders = [make_patches_folder(tmp_path / "data", name, n_points=4, seed=i)
               for i, name in enumerate(["train", "valid"])]
    foreign = tmp_path / "tfr"
    foreign.mkdir()
    (foreign / "model.keras").write_text("precious")
    with pytest.raises(InputError, match=r"already holds files .* \(model\.keras\)") as error:
        convert(folders, foreign)
    assert error.value.parameter == "OUTPUT_DIR" and (foreign / "model.keras").read_text() == "precious"
    convert(folders, tmp_path / "ours")
    convert(folders, tmp_path / "ours", n_samples_per_shard=1)  # a previous output of ours is replaced
    assert len(list((tmp_path / "ours" / "train").glob("*.records"))) == 4
    convert(folders[:1], tmp_path / "ours")  # and may become a single output
    assert (tmp_path / "ours" / "manifest.json").exists() and not (tmp_path / "ours" / "train").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_inputs(tmp_path: Path):
    train = make_patches_folder(tmp_path / "a", "train", n_points=4)
    other_train = make_patches_folder(tmp_path / "b", "train", n_points=4)
    with pytest.raises(InputError, match="several inputs are folders named train") as error:
        convert([train, other_train], tmp_path / "out")
    assert error.value.parameter == "INPUT"
    convert([train], tmp_path / "tfr")
    with pytest.raises(InputError, match="is already a TFRecords folder"):
        convert([tmp_path / "tfr"], tmp_path / "out")
    with pytest.raises(InputError, match="no patches folder given"):
        convert([], tmp_path / "out")
    with pytest.raises(InputError, match="must be at least 1") as error:
        convert([train], tmp_path / "out", n_samples_per_shard=0)
    assert error.value.parameter == "N_SAMPLES_PER_SHARD"
    with pytest.raises(InputError, match="do not fill one shard of 10"):
        convert([train], tmp_path / "out", n_samples_per_shard=10, drop_remainder=True)
    assert not (tmp_path / "out").exists()


def test_a_folder_of_datasets_is_named_in_the_error(tmp_path: Path):
    from otbtf_qgis.core.errors import DatasetError

    folders = [make_patches_folder(tmp_path / "data", name, n_points=3, seed=i)
               for i, name in enumerate(["train", "valid"])]
    convert(folders, tmp_path / "tfr")
    with pytest.raises(DatasetError, match="It holds the datasets train, valid: give one of them"):
        describe_dataset(tmp_path / "tfr")


def test_cancel_leaves_nothing(tmp_path: Path):
    folder = make_patches_folder(tmp_path / "data", "train", n_points=6)
    with pytest.raises(CancelledError):
        create_tfrecords(CreateTFRecordsConfig(inputs=(str(folder),), output_dir=str(tmp_path / "tfr"),
                                               n_samples_per_shard=1), CancelAfter(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
