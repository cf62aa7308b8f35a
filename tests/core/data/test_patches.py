from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from otbtf_qgis.core.data import patches as dataset_module
from otbtf_qgis.core.data.patches import (
    DatasetFromPatchesImages,
    PatchesImagesReader,
    RandomIterator,
    SequentialIterator,
    patches_tf_dataset,
)
from otbtf_qgis.core.errors import DatasetError
from otbtf_qgis.core.data.tfrecords import TFRecords

from tests.core.conftest import make_raster
from tests.core.patches_data import make_patches_folder, read_patches


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_patches_folder(tmp_path, "train", n_points=23)


@pytest.mark.parametrize("streaming", [False, True])
def test_reader_gives_each_sample(folder: Path, streaming: bool):
    reader = PatchesImagesReader.from_folder(folder, use_streaming=streaming)
    expected = read_patches(folder)
    assert reader.get_size() == 23 and reader.keys == ["xs", "xs2", "class"]
    assert reader.shape("xs") == (3, 5, 4) and reader.dtype("xs2") == np.float32
    for index in (0, 7, 22):
        sample = reader.get_sample(index)
        for key, values in expected.items():
            np.testing.assert_array_equal(sample[key], values[index])
            assert sample[key].dtype == values.dtype
    block = reader.read_range(5, 12)
    np.testing.assert_array_equal(block["xs"], expected["xs"][5:12])
    stats = reader.get_stats()
    flat = expected["xs"].reshape(-1, 4).astype(np.float64)
    np.testing.assert_allclose(stats["xs"]["mean"], flat.mean(axis=0))
    np.testing.assert_allclose(stats["xs"]["std"], flat.std(axis=0))
    np.testing.assert_array_equal(stats["xs"]["min"], flat.min(axis=0))
    np.testing.assert_array_equal(stats["class"]["max"], [2])


def test_non_square_patches_without_manifest_need_their_size(tmp_path: Path):
    image = np.arange(4 * 3 * 5 * 2, dtype=np.int16).reshape(12, 5, 2)  # four 5x3 patches
    (tmp_path / "a").mkdir()
    path = make_raster(tmp_path / "a" / "xs_patches.tif", image, tiled=False)
    with pytest.raises(DatasetError, match=r"is not a column of 5x5 patches"):
        PatchesImagesReader({"xs": str(path)})
    reader = PatchesImagesReader({"xs": [str(path), str(path)]}, patch_sizes={"xs": (5, 3)})
    assert reader.get_size() == 8 and reader.ds_sizes == [4, 4]
    np.testing.assert_array_equal(reader.get_sample(5)["xs"], image[3:6])


def test_sources_must_agree(tmp_path: Path):
    three = make_raster(tmp_path / "three.tif", np.zeros((12, 4, 1), np.uint8), tiled=False)
    two = make_raster(tmp_path / "two.tif", np.zeros((8, 4, 1), np.uint8), tiled=False)
    other_bands = make_raster(tmp_path / "bands.tif", np.zeros((12, 4, 2), np.uint8), tiled=False)
    with pytest.raises(DatasetError, match=r"different numbers of patches: \{'a': 3, 'b': 2\}"):
        PatchesImagesReader({"a": str(three), "b": str(two)})
    with pytest.raises(DatasetError, match="differ in bands or data type"):
        PatchesImagesReader({"a": [str(three), str(other_bands)]})


def test_iterators(folder: Path):
    reader = PatchesImagesReader.from_folder(folder)
    first = RandomIterator(reader, seed=4)
    cycle = [next(first) for _ in range(23)]
    assert sorted(cycle) == list(range(23)) and cycle != list(range(23))
    assert sorted(next(first) for _ in range(23)) == list(range(23))  # the next cycle is a permutation too
    assert [next(RandomIterator(reader, seed=4)) for _ in range(1)] == cycle[:1]
    sequential = SequentialIterator(reader)
    assert [next(sequential) for _ in range(25)] == [*range(23), 0, 1]


def test_dataset_serves_one_epoch_of_every_sample(folder: Path):
    dataset = DatasetFromPatchesImages({"xs": str(folder / "xs_patches.tif"), "class": str(folder / "labels.tif")},
                                       buffer_length=8, iterator_cls=functools.partial(RandomIterator, seed=0))
    assert dataset.output_shapes == {"xs": (3, 5, 4), "class": (1, 1, 1)}  # patch size from the manifest
    expected = read_patches(folder)
    for _ in range(2):
        batches = list(dataset.get_tf_dataset(batch_size=5, drop_remainder=False, targets_keys=["class"]))
        assert [len(inputs["xs"]) for inputs, _ in batches] == [5, 5, 5, 5, 3]
        seen = np.concatenate([inputs["xs"].numpy() for inputs, _ in batches])
        assert sorted(map(bytes, seen)) == sorted(map(bytes, expected["xs"]))
    dataset.close()


def test_to_tfrecords_writes_every_sample(folder: Path, tmp_path: Path):
    dataset = DatasetFromPatchesImages({"xs": str(folder / "xs_patches.tif")}, iterator_cls=SequentialIterator)
    dataset.to_tfrecords(tmp_path / "tfr", n_samples_per_shard=10, drop_remainder=False)
    records = list(TFRecords(tmp_path / "tfr").as_dataset(batch_size=None))
    np.testing.assert_array_equal(np.stack([r["xs"].numpy() for r in records]), read_patches(folder)["xs"])
    dataset.close()


def test_training_dataset_in_memory_and_streamed_agree(folder: Path, monkeypatch):
    def batches(shuffle: bool) -> dict[str, np.ndarray]:
        """Every key's batches, concatenated (the remainder of 3 samples dropped)."""
        read = list(patches_tf_dataset(folder, 4, shuffle=shuffle, seed=2))
        assert len(read) == 5
        return {key: np.concatenate([b[key].numpy() for b in read]) for key in read[0]}

    in_memory, in_memory_shuffled = batches(False), batches(True)
    monkeypatch.setattr(dataset_module, "IN_MEMORY_MAX_BYTES", 0)
    streamed, streamed_shuffled = batches(False), batches(True)
    expected = read_patches(folder)
    assert set(in_memory) == set(streamed) == set(expected)
    for key, values in expected.items():
        np.testing.assert_array_equal(streamed[key], values[:20])
        np.testing.assert_array_equal(in_memory[key], values[:20])
        # the same seed gives the same order whichever way the samples are read
        np.testing.assert_array_equal(streamed_shuffled[key], in_memory_shuffled[key])
        assert not np.array_equal(streamed_shuffled[key], streamed[key])
    assert batches(True)["class"].tolist() == streamed_shuffled["class"].tolist()  # reproducible
