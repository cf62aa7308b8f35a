from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from otbtf_qgis.core.data.createtfrecords import CreateTFRecordsConfig, create_tfrecords
from otbtf_qgis.core.data.description import describe_dataset
from otbtf_qgis.core.data.loading import open_dataset
from otbtf_qgis.core.errors import DatasetError
from otbtf_qgis.core.models.ops import one_hot
from otbtf_qgis.core.data.tfrecords import TFRecords

from tests.core.patches_data import make_patches_folder, read_patches


def write_otbtf_style(folder: Path, samples: list[dict[str, np.ndarray]], per_shard: int) -> None:
    """A TFRecords folder exactly as the format says, written here with tf.train.Example."""
    folder.mkdir()
    first = samples[0]
    (folder / "output_shapes.json").write_text(json.dumps({k: list(v.shape) for k, v in first.items()}))
    (folder / "output_types.json").write_text(json.dumps({k: tf.as_dtype(v.dtype).name for k, v in first.items()}))
    for shard, start in enumerate(range(0, len(samples), per_shard)):
        with tf.io.TFRecordWriter(str(folder / f"{shard}.records")) as writer:
            for sample in samples[start:start + per_shard]:
                feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[tf.io.serialize_tensor(v).numpy()])) for k, v in sample.items()}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def otbtf_samples(n: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"input_xs": rng.integers(0, 60000, (4, 3, 2)).astype(np.uint16),
             "labels": rng.integers(0, 5, (4, 3, 1)).astype(np.uint8)} for _ in range(n)]


def test_reads_a_folder_written_with_tf_train_example(tmp_path: Path):
    samples = otbtf_samples(10)
    folder = tmp_path / "otbtf"
    write_otbtf_style(folder, samples, per_shard=4)  # shards of 4, 4, 2; shard 10 would sort after 2
    description = describe_dataset(folder)
    assert (description.kind, description.n_samples) == ("tfrecords", 10)
    assert description.shapes == {"input_xs": (4, 3, 2), "labels": (4, 3, 1)}
    assert description.dtypes == {"input_xs": "uint16", "labels": "uint8"}
    assert description.class_mapping == {} and description.ignore_label is None
    batches = list(TFRecords(folder).read(batch_size=3, target_keys=["labels"], drop_remainder=False))
    assert [len(inputs["input_xs"]) for inputs, _ in batches] == [3, 3, 3, 1]
    inputs = np.concatenate([i["input_xs"].numpy() for i, _ in batches])
    targets = np.concatenate([t["labels"].numpy() for _, t in batches])
    assert set(batches[0][0]) == {"input_xs"} and set(batches[0][1]) == {"labels"}
    np.testing.assert_array_equal(inputs, np.stack([s["input_xs"] for s in samples]))
    np.testing.assert_array_equal(targets, np.stack([s["labels"] for s in samples]))
    # With a preprocessing function, OTBTF 4 applies it to each sample's single dict (before batching), then
    # splits the result by target_keys.
    def preprocess(sample: dict, nb_classes: int) -> dict:
        assert set(sample) == {"input_xs", "labels"} and sample["labels"].shape.as_list() == [4, 3, 1]
        return {"input_xs": sample["input_xs"], "onehot": one_hot(sample["labels"], nb_classes)}

    processed = list(TFRecords(folder).read(batch_size=4, target_keys=["onehot"], preprocessing_fn=preprocess,
                                            nb_classes=5))
    assert [set(i) for i, _ in processed] == [{"input_xs"}, {"input_xs"}]
    assert [t["onehot"].shape.as_list() for _, t in processed] == [[4, 4, 3, 5], [4, 4, 3, 5]]
    np.testing.assert_array_equal(np.argmax(processed[0][1]["onehot"].numpy(), axis=-1),
                                  np.stack([s["labels"][..., 0] for s in samples[:4]]))
    dataset = open_dataset(folder, batch_size=5, shuffle=False)
    assert dataset.element_spec["input_xs"].shape.as_list() == [5, 4, 3, 2]
    assert dataset.element_spec["labels"].dtype == tf.uint8


def test_patches_to_tfrecords_to_tensors_is_bit_exact(tmp_path: Path):
    patches = make_patches_folder(tmp_path, "train", n_points=23)
    create_tfrecords(CreateTFRecordsConfig(inputs=(str(patches),), output_dir=str(tmp_path / "tfr"),
                                           n_samples_per_shard=7, seed=3))
    source = read_patches(patches)
    patches_ids = json.loads((patches / "manifest.json").read_text())["point_ids"]
    manifest = json.loads((tmp_path / "tfr" / "manifest.json").read_text())
    assert manifest["format"] == "otbtf_qgis-tfrecords/1" and manifest["n_samples"] == 23
    assert [s["n_samples"] for s in manifest["shards"]] == [7, 7, 7, 2]
    assert sorted(manifest["point_ids"]) == sorted(patches_ids) and manifest["point_ids"] != patches_ids
    description = describe_dataset(tmp_path / "tfr")
    assert description.shapes == {"xs": (3, 5, 4), "xs2": (2, 2, 1), "class": (1, 1, 1)}
    assert description.dtypes == {"xs": "uint16", "xs2": "float32", "class": "int32"}
    assert description.class_mapping == {"crop": 0, "tree": 1, "water": 2}
    tensors = list(open_dataset(tmp_path / "tfr", batch_size=1, shuffle=False, drop_remainder=False))
    assert len(tensors) == 23
    for i, batch in enumerate(tensors):
        index = patches_ids.index(manifest["point_ids"][i])
        for key, values in source.items():
            got = batch[key].numpy()[0]
            assert got.dtype == values.dtype and got.tobytes() == values[index].tobytes(), key


def test_shards_and_drop_remainder(tmp_path: Path):
    patches = make_patches_folder(tmp_path, "train", n_points=23)
    create_tfrecords(CreateTFRecordsConfig(inputs=(str(patches),), output_dir=str(tmp_path / "drop"),
                                           n_samples_per_shard=10, drop_remainder=True))
    assert sorted(p.name for p in (tmp_path / "drop").glob("*.records")) == ["0.records", "1.records"]
    assert describe_dataset(tmp_path / "drop").n_samples == 20


def test_seeded_shuffle_is_reproducible_and_complete(tmp_path: Path):
    patches = make_patches_folder(tmp_path, "train", n_points=23)
    create_tfrecords(CreateTFRecordsConfig(inputs=(str(patches),), output_dir=str(tmp_path / "tfr"),
                                           n_samples_per_shard=5, shuffle=False))

    def order(seed: int | None) -> list[int]:
        records = TFRecords(tmp_path / "tfr").as_dataset(batch_size=None, shuffle_buffer_size=8, seed=seed)
        return [int(s["xs"].numpy()[0, 0, 0]) for s in records]  # encodes the patch's top-left pixel

    first = order(1)
    assert first == order(1) and first != order(2)
    assert sorted(first) == sorted(order(None)) and len(first) == 23

    def parallel_order(seed: int | None) -> list[int]:
        records = TFRecords(tmp_path / "tfr").as_dataset(batch_size=4, shuffle_buffer_size=8, seed=seed,
                                                         drop_remainder=False, num_parallel_reads=3)
        return [int(v) for batch in records for v in batch["xs"].numpy()[:, 0, 0, 0]]

    assert parallel_order(5) == parallel_order(5) and sorted(parallel_order(None)) == sorted(first)


def corrupt(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_truncated_or_corrupt_shards_are_named(tmp_path: Path):
    patches = make_patches_folder(tmp_path, "train", n_points=12)
    for name in ("truncated", "bad_length", "bad_data"):
        create_tfrecords(CreateTFRecordsConfig(inputs=(str(patches),), output_dir=str(tmp_path / name),
                                               n_samples_per_shard=5))
    shard = tmp_path / "truncated" / "1.records"
    shard.write_bytes(shard.read_bytes()[:-20])
    with pytest.raises(DatasetError, match=r"shard '.*truncated/1\.records' is truncated") as error:
        describe_dataset(tmp_path / "truncated", "VALID_DATA")
    assert error.value.parameter == "VALID_DATA"
    with pytest.raises(DatasetError, match=r"truncated/1\.records"):
        open_dataset(tmp_path / "truncated", batch_size=2)
    with pytest.raises(DatasetError, match=r"shard '.*truncated/1\.records' is truncated"):
        TFRecords(tmp_path / "truncated").verify()
    corrupt(tmp_path / "bad_length" / "2.records", 3)
    with pytest.raises(DatasetError, match=r"'.*bad_length/2\.records' is corrupt \(bad length checksum"):
        describe_dataset(tmp_path / "bad_length")
    corrupt(tmp_path / "bad_data" / "0.records", 40)  # inside the data of the first record
    assert describe_dataset(tmp_path / "bad_data").n_samples == 12  # the framing is intact
    with pytest.raises(DatasetError, match=r"shard '.*bad_data/0\.records' is corrupt \(corrupted record at \d+\)"):
        TFRecords(tmp_path / "bad_data").verify()
    with pytest.raises(DatasetError, match=r"bad_data/0\.records"):
        open_dataset(tmp_path / "bad_data", batch_size=2)


def test_one_hot_as_otbtf():
    labels = tf.constant([[[0], [2]], [[1], [255]]], tf.uint8)
    encoded = one_hot(labels, 3).numpy()
    assert encoded.shape == (2, 2, 3)
    np.testing.assert_array_equal(encoded.reshape(4, 3), [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0]])


def test_tensors_serialized_otherwise_are_still_read(tmp_path: Path):
    """A writer may fill TensorProto's typed fields instead of tensor_content: the per-record path reads it."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "output_shapes.json").write_text(json.dumps({"labels": [2, 1, 1], "big": [2]}))
    (folder / "output_types.json").write_text(json.dumps({"labels": "int32", "big": "uint32"}))
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in (2, 1, 1)])
    with tf.io.TFRecordWriter(str(folder / "0.records")) as writer:
        for value in range(5):
            labels = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, tensor_shape=shape, int_val=[value, -value])
            big = tf.io.serialize_tensor(tf.constant([value, 4_000_000_000], tf.uint32)).numpy()
            feature = {"labels": tf.train.Feature(bytes_list=tf.train.BytesList(value=[labels.SerializeToString()])),
                       "big": tf.train.Feature(bytes_list=tf.train.BytesList(value=[big]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    batches = list(open_dataset(folder, batch_size=5, shuffle=False))
    np.testing.assert_array_equal(batches[0]["labels"].numpy()[:, :, 0, 0], [[v, -v] for v in range(5)])
    np.testing.assert_array_equal(batches[0]["big"].numpy(), [[v, 4_000_000_000] for v in range(5)])
    assert batches[0]["big"].dtype == tf.uint32


def test_records_that_do_not_match_the_json_files(tmp_path: Path):
    folder = tmp_path / "otbtf"
    write_otbtf_style(folder, otbtf_samples(3), per_shard=3)
    (folder / "output_types.json").write_text(json.dumps({"input_xs": "int16", "labels": "uint8"}))
    with pytest.raises(DatasetError, match=r"records of '.*0\.records' do not match output_shapes\.json"):
        open_dataset(folder, batch_size=1)


def test_tensors_are_serialized_as_tensorflow_does():
    from otbtf_qgis.core.data.tfrecords import _tensor_headers, serialize_sample, serialize_tensor

    rng = np.random.default_rng(1)
    numbers = rng.normal(size=(3, 2, 2)) * 1000
    sample = {name: numbers.astype(name) for name in ("uint8", "int8", "uint16", "int16", "uint32", "int32",
                                                      "uint64", "int64", "float16", "float32", "float64")}
    sample.update({"bool": numbers > 0, "scalar": np.array(7, np.int32), "empty": np.zeros((0, 2), np.float32),
                   "complex64": (numbers + 1j).astype(np.complex64), "string": np.array([b"ab", b"", b"c"])})
    headers = _tensor_headers({k: list(v.shape) for k, v in sample.items()},
                              {k: tf.as_dtype(v.dtype) for k, v in sample.items()})
    assert headers["complex64"] is None and headers["string"] is None and headers["uint16"] is not None
    for key, value in sample.items():
        assert serialize_tensor(value, headers[key]) == tf.io.serialize_tensor(value).numpy(), key
    big_endian = sample["uint32"].astype(">u4")[:, ::-1]  # not contiguous either
    assert serialize_tensor(big_endian, headers["uint32"]) == tf.io.serialize_tensor(sample["uint32"][:, ::-1]).numpy()
    assert serialize_sample(sample, headers) == serialize_sample(sample)


def test_record_layout_fast_path_and_fallbacks(tmp_path: Path):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    from otbtf_qgis.core.data.tfrecords import RecordLayout, _tensor_header, serialize_sample

    shapes = {"a": [2, 1], "b": [3]}
    dtypes = {"a": tf.int32, "b": tf.uint16}
    headers = {k: _tensor_header(shapes[k], dtypes[k]) for k in shapes}
    record = serialize_sample({"a": np.array([[5], [6]], np.int32), "b": np.array([7, 8, 9], np.uint16)})
    layout = RecordLayout.learn(record, shapes, dtypes, headers)
    assert layout is not None and layout.length == len(record)
    batch = tf.constant([record, record])
    decoded = layout.decode(batch, shapes, dtypes)
    np.testing.assert_array_equal(decoded["b"].numpy(), [[7, 8, 9], [7, 8, 9]])
    twins = serialize_sample({"a": np.zeros((2, 1), np.int32), "b": np.zeros(3, np.uint16)})
    assert RecordLayout.learn(twins, {"a": [3], "b": [3]}, {"a": tf.uint16, "b": tf.uint16},
                              {k: _tensor_header([3], tf.uint16) for k in "ab"}) is None  # ambiguous: same bytes

    # A folder whose second shard was written differently: every batch takes the generic path.
    folder = tmp_path / "mixed"
    write_otbtf_style(folder, [{"labels": np.array([[[v]], [[-v]]], np.int32)} for v in range(4)], per_shard=4)
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in (2, 1, 1)])
    with tf.io.TFRecordWriter(str(folder / "1.records")) as writer:
        for value in range(4, 8):
            proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, tensor_shape=shape, int_val=[value, -value])
            feature = {"labels": tf.train.Feature(bytes_list=tf.train.BytesList(value=[proto.SerializeToString()]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    values = [b["labels"].numpy()[:, 0, 0, 0].tolist() for b in open_dataset(folder, batch_size=2, shuffle=False)]
    assert values == [[0, 1], [2, 3], [4, 5], [6, 7]]
    mixed = [b["labels"].numpy()[:, 1, 0, 0].tolist() for b in open_dataset(folder, batch_size=3, shuffle=False,
                                                                               drop_remainder=False)]
    assert mixed == [[0, -1, -2], [-3, -4, -5], [-6, -7]]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def example_in_order(sample: dict[str, np.ndarray], order: list[str]) -> bytes:
    """A serialized tf.train.Example whose features map entries come in ``order`` (a writer may choose any)."""
    features = b"".join(tf.train.Features(feature={key: tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[tf.io.serialize_tensor(sample[key]).numpy()]))}).SerializeToString() for key in order)
    return b"\x0a" + _varint(len(features)) + features


def test_records_are_decoded_by_layout_only_when_every_record_has_it(tmp_path: Path):
    from otbtf_qgis.core.data.formats import first_record, scan_records

    rng = np.random.default_rng(4)
    samples = [{"a": rng.integers(0, 60000, (2, 3)).astype(np.uint16), "b": rng.normal(size=(4,)).astype(np.float32)}
               for _ in range(9)]
    for name, odd in (("same", None), ("odd", 7)):  # in "odd", record 7 lists its features the other way round
        folder = tmp_path / name
        folder.mkdir()
        (folder / "output_shapes.json").write_text(json.dumps({"a": [2, 3], "b": [4]}))
        (folder / "output_types.json").write_text(json.dumps({"a": "uint16", "b": "float32"}))
        records = [example_in_order(s, ["b", "a"] if i == odd else ["a", "b"]) for i, s in enumerate(samples)]
        assert len({len(r) for r in records}) == 1  # same length: only the bytes outside the data differ
        for shard, start in enumerate(range(0, 9, 4)):
            with tf.io.TFRecordWriter(str(folder / f"{shard}.records")) as writer:
                for record in records[start:start + 4]:
                    writer.write(record)
        (folder / "3.records").write_bytes(b"")  # an empty shard is fine
        tfrecords = TFRecords(folder)
        shards = sorted(folder.glob("*.records"))
        assert first_record(shards) == records[0]
        assert first_record([folder / "3.records"]) is None
        from otbtf_qgis.core.data.tfrecords import _tensor_header

        headers = {"a": _tensor_header([2, 3], tf.uint16), "b": _tensor_header([4], tf.float32)}
        layout = tfrecords._uniform_layout(shards, {"a": [2, 3], "b": [4]}, {"a": tf.uint16, "b": tf.float32},
                                           headers)
        assert (layout is None) == (odd is not None)
        if odd is not None:
            assert [scan_records(s, "INPUT", len(records[0]), ())[0] for s in shards] == [4, 4, 1, 0]
        batches = list(tfrecords.as_dataset(batch_size=2, drop_remainder=False))
        assert [len(b["a"]) for b in batches] == [2, 2, 2, 2, 1]
        np.testing.assert_array_equal(np.concatenate([b["a"].numpy() for b in batches]), [s["a"] for s in samples])
        np.testing.assert_array_equal(np.concatenate([b["b"].numpy() for b in batches]), [s["b"] for s in samples])


def test_batches_are_parsed_in_groups_and_split(tmp_path: Path):
    """Records are parsed 64 at a time (a multiple of the batch size) then split: same batches, same order."""
    samples = otbtf_samples(70)
    folder = tmp_path / "otbtf"
    write_otbtf_style(folder, samples, per_shard=30)
    for batch_size, drop in ((3, True), (3, False), (100, False), (64, True), (7, False)):
        dataset = TFRecords(folder).as_dataset(batch_size=batch_size, drop_remainder=drop)
        assert dataset.element_spec["labels"].shape.as_list() == [batch_size if drop else None, 4, 3, 1]
        batches = list(dataset)
        sizes = [len(b["labels"]) for b in batches]
        expected = [batch_size] * (70 // batch_size) + ([] if drop or 70 % batch_size == 0 else [70 % batch_size])
        assert sizes == expected
        got = np.concatenate([b["input_xs"].numpy() for b in batches])
        np.testing.assert_array_equal(got, np.stack([s["input_xs"] for s in samples])[:len(got)])


def test_save_and_load_are_static_as_in_otbtf(tmp_path: Path):
    path = tmp_path / "shapes.json"
    TFRecords.save({"xs": [8, 8, 4]}, path)
    assert TFRecords.load(path) == {"xs": [8, 8, 4]}
    path.write_text("{not json")
    with pytest.raises(DatasetError) as error:
        TFRecords.load(path, "TRAIN_DATA")
    assert error.value.parameter == "TRAIN_DATA"
