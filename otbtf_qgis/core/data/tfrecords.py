"""TFRecords in OTBTF's on-disk format, with the API of OTBTF's ``otbtf.tfrecords``.

A TFRecords folder holds ``output_shapes.json`` and ``output_types.json`` (per key, no
batch dimension, TensorFlow dtype names) and shards ``0.records``, ``1.records``, …;
each record is a ``tf.train.Example`` whose feature per key is a ``bytes_list`` holding
``tf.io.serialize_tensor`` of the sample. OTBTF 4.x reads what we write and we read
what it writes. We add a ``manifest.json`` (``docs/formats.md``) that readers do not need.
A tensor is written as the constant header of its shape and dtype (computed once per
key) followed by its little-endian data: the bytes of ``tf.io.serialize_tensor``,
without a TensorFlow call per sample (strings and complex numbers excepted).

Reading is a ``tf.data`` pipeline: shards read one after the other (or several at once
on request), records parsed in parallel by whole batches, batches prefetched; with a
seed the order is reproducible. When every record has the same layout (checked on disk
when the pipeline is built, see :class:`RecordLayout`), a batch is decoded by slicing
the raw tensor data out of the records, without protobuf parsing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf

from otbtf_qgis.core.data.formats import (
    read_json_file,
    split_targets,
    OUTPUT_SHAPES_NAME,
    OUTPUT_TYPES_NAME,
    count_records,
    first_record,
    scan_records,
    shard_files,
    write_json,
)
from otbtf_qgis.core.errors import DatasetError, InputError
from otbtf_qgis.core.progress import NullReporter, Reporter

Sample = dict[str, npt.NDArray[Any]]


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def serialize_tensor(value: npt.NDArray[Any], header: bytes | None = None) -> bytes:
    """``tf.io.serialize_tensor`` of an array, byte for byte.

    With the ``header`` of the array's shape and dtype (see :func:`_tensor_header`) the
    result is that header followed by the array's little-endian bytes, without a call
    into TensorFlow; without it (strings, complex numbers), TensorFlow serializes it.
    """
    if header is None:
        return bytes(tf.io.serialize_tensor(value).numpy())
    data = np.ascontiguousarray(value)
    return header + data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes()


def serialize_sample(sample: Sample, headers: Mapping[str, bytes | None] | None = None) -> bytes:
    """One record: a ``tf.train.Example`` with, per key, ``tf.io.serialize_tensor`` of the array.

    ``headers`` (see :func:`_tensor_headers`) spare a TensorFlow call per key.
    """
    features = {key: _bytes_feature(serialize_tensor(value, None if headers is None else headers[key]))
                for key, value in sample.items()}
    return bytes(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


#: Records parsed together, at least (a multiple of the batch size): parsing is vectorised
#: per batch, and each parse costs a fixed overhead besides its per-byte work.
PARSE_BATCH = 64
#: Records a reading thread hands over at once when shards are read in parallel.
PARALLEL_READ_BLOCK = 32
#: dtypes ``tf.io.decode_raw`` cannot produce directly, decoded as a same-size type then bit-cast.
_BITCAST = {tf.uint32: tf.int32, tf.uint64: tf.int64}


def _tensor_header(shape: Sequence[int], dtype: tf.DType) -> bytes:
    """The bytes ``tf.io.serialize_tensor`` puts before the raw data of a tensor of this shape and dtype.

    A serialized tensor is a ``TensorProto``: dtype, shape, then ``tensor_content`` (the
    raw little-endian data) last. For a given shape and dtype everything before the data
    is constant, which lets a whole batch be decoded at once.
    """
    zeros = tf.io.serialize_tensor(tf.zeros(shape, dtype)).numpy()
    return bytes(zeros[: len(zeros) - int(np.prod(shape)) * dtype.size])


def _tensor_headers(shapes: Mapping[str, Sequence[int]], dtypes: Mapping[str, tf.DType]) -> dict[str, bytes | None]:
    """Per key, :func:`_tensor_header`; ``None`` for strings and complex numbers (left to TensorFlow)."""
    return {key: None if dtype == tf.string or dtype.is_complex else _tensor_header(shapes[key], dtype)
            for key, dtype in dtypes.items()}


def _decode_raw(data: tf.Tensor, shape: Sequence[int], dtype: tf.DType) -> tf.Tensor:
    """Decode a vector of raw little-endian tensor data, one element per sample, into ``(batch, *shape)``."""
    decoded = tf.io.decode_raw(data, _BITCAST.get(dtype, dtype))
    if dtype in _BITCAST:
        decoded = tf.bitcast(decoded, dtype)
    return tf.reshape(decoded, [-1, *[int(d) for d in shape]])


def _decode_batch(serialized: tf.Tensor, shape: Sequence[int], dtype: tf.DType, header: bytes | None) -> tf.Tensor:
    """Decode a vector of serialized tensors of one shape and dtype into ``(batch, *shape)``.

    Fast path: when every element is ``header`` (see :func:`_tensor_header`, computed
    eagerly beforehand) followed by the raw data, the data is decoded in one
    ``decode_raw``; otherwise (a writer that serialized differently, or no ``header``)
    each element goes through ``tf.io.parse_tensor``.
    """
    shape = [int(d) for d in shape]
    spec = tf.TensorSpec(shape, dtype)

    def one_by_one() -> tf.Tensor:
        return tf.map_fn(lambda item: tf.io.parse_tensor(item, dtype), serialized, fn_output_signature=spec)

    if header is None:
        return one_by_one()
    n_bytes = int(np.prod(shape)) * dtype.size
    expected = tf.strings.length(serialized) == len(header) + n_bytes
    expected &= tf.strings.substr(serialized, 0, len(header)) == header

    def raw() -> tf.Tensor:
        return _decode_raw(tf.strings.substr(serialized, len(header), n_bytes), shape, dtype)

    return tf.cond(tf.reduce_all(expected), raw, one_by_one)


class RecordLayout:
    """Where each key's raw data sits in a serialized record, when every record has the same layout.

    Records written by one writer for one set of keys, shapes and dtypes are byte-identical
    except for the tensors' data: same field order, same lengths. Learnt from the first
    record of a folder, the layout lets a batch of records be decoded with one
    ``substr`` + ``decode_raw`` per key, skipping protobuf parsing. It is used only when
    :meth:`fits` every shard (length and every byte outside the data, checked on disk
    without reading the data); otherwise records are parsed the generic way.

    Args:
        length: Record length in bytes.
        fields: ``(key, offset, n_bytes)`` of each tensor's raw data, by offset.
        skeleton: ``(offset, bytes)`` of every stretch of the record outside the data.
    """

    def __init__(self, length: int, fields: list[tuple[str, int, int]], skeleton: list[tuple[int, bytes]]) -> None:
        self.length = length
        self.fields = fields
        self.skeleton = skeleton

    @classmethod
    def learn(cls, record: bytes, shapes: Mapping[str, Sequence[int]], dtypes: Mapping[str, tf.DType],
              headers: Mapping[str, bytes | None]) -> RecordLayout | None:
        """The layout of ``record``, or ``None`` when it cannot be used (then records are parsed)."""
        example = tf.train.Example.FromString(record)
        fields = []
        for key, dtype in dtypes.items():
            header = headers.get(key)
            values = example.features.feature[key].bytes_list.value
            n_bytes = int(np.prod(shapes[key])) * dtype.size
            if header is None or len(values) != 1 or len(values[0]) != len(header) + n_bytes:
                return None
            tensor = bytes(values[0])
            position = record.find(tensor)
            if position < 0 or record.find(tensor, position + 1) >= 0:  # absent or ambiguous
                return None
            fields.append((key, position + len(header), n_bytes))
        fields.sort(key=lambda field: field[1])
        skeleton = []
        start = 0
        for _, offset, n_bytes in fields:
            if offset > start:
                skeleton.append((start, record[start:offset]))
            start = offset + n_bytes
        if start < len(record):
            skeleton.append((start, record[start:]))
        return cls(len(record), fields, skeleton)

    def fits(self, shard: str | os.PathLike[str], parameter: str = "INPUT") -> bool:
        """True when every record of ``shard`` has this layout (only the bytes outside the data are read).

        Raises:
            DatasetError: naming the shard when it is truncated or its framing is corrupt.
        """
        return scan_records(shard, parameter, self.length, self.skeleton)[1]

    def decode(self, serialized: tf.Tensor, shapes: Mapping[str, Sequence[int]],
               dtypes: Mapping[str, tf.DType]) -> dict[str, tf.Tensor]:
        """Decode a batch of records that have this layout."""
        return {key: _decode_raw(tf.strings.substr(serialized, offset, n_bytes), shapes[key], dtypes[key])
                for key, offset, n_bytes in self.fields}


def _error_text(error: tf.errors.OpError) -> str:
    """What a TensorFlow error says went wrong, without the traceback a graph error carries.

    A graph error reads "Graph execution error:", "Detected at node … (most recent call
    last):", the ``File …`` lines, the op's message, then ``[[{{node …}}]]``.
    """
    lines = [line.strip() for line in error.message.splitlines()]
    useful = [line for line in lines if line and not line.startswith(("File ", "[[")) and not line.endswith(":")]
    return useful[-1] if useful else type(error).__name__


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])  # type: ignore[untyped-decorator]
def _count_shard(path: tf.Tensor) -> tf.Tensor:
    """Read every record of a shard (checking its checksums) and count them; traced once for all shards."""
    return tf.data.TFRecordDataset(path).reduce(np.int64(0), lambda count, _: count + 1)


class TFRecords:
    """A TFRecords folder: write samples to shards, read them back as a ``tf.data.Dataset``.

    Args:
        path: The folder (created when writing).
        parameter: The user-facing parameter named in errors.
    """

    def __init__(self, path: str | os.PathLike[str], parameter: str = "INPUT") -> None:
        self.dirpath = Path(path)
        self.parameter = parameter
        self.output_shapes_file = self.dirpath / OUTPUT_SHAPES_NAME
        self.output_types_file = self.dirpath / OUTPUT_TYPES_NAME
        self.output_shapes: dict[str, list[int]] | None = (
            self.load(self.output_shapes_file, self.parameter) if self.output_shapes_file.is_file() else None)
        self.output_types: dict[str, str] | None = (
            self.load(self.output_types_file, self.parameter) if self.output_types_file.is_file() else None)

    @staticmethod
    def save(data: Any, filepath: str | os.PathLike[str]) -> None:
        """Save ``data`` as JSON."""
        write_json(filepath, data)

    @staticmethod
    def load(filepath: str | os.PathLike[str], parameter: str = "INPUT") -> Any:
        """Load a JSON file of the folder (``output_shapes.json``, ``output_types.json``), as OTBTF's static ``load``.

        Raises:
            DatasetError: naming the file (and ``parameter``) when it cannot be read or is not JSON.
        """
        return read_json_file(Path(filepath), parameter)

    # ---------------------------------------------------------------- writing

    def write(self, samples: Iterable[Sample], n_samples: int, output_shapes: dict[str, Sequence[int]],
              output_types: dict[str, Any], n_samples_per_shard: int = 100, drop_remainder: bool = True,
              reporter: Reporter | None = None) -> list[dict[str, Any]]:
        """Write ``n_samples`` samples taken from ``samples`` to shards; return ``[{file, n_samples}]``.

        Shard ``k`` holds samples ``[k * n_samples_per_shard, (k + 1) * n_samples_per_shard)``.
        With ``drop_remainder`` the last incomplete shard is not written (OTBTF's rule),
        so every shard holds exactly ``n_samples_per_shard`` samples.

        Raises:
            InputError: ``n_samples_per_shard`` is not positive, or no shard would be written.
        """
        if n_samples_per_shard < 1:
            raise InputError(f"must be at least 1, got {n_samples_per_shard}.", "N_SAMPLES_PER_SHARD")
        n_shards = n_samples // n_samples_per_shard
        if not drop_remainder and n_samples % n_samples_per_shard:
            n_shards += 1
        if n_shards == 0:
            raise InputError(f"{n_samples} samples do not fill one shard of {n_samples_per_shard} and the "
                             "remainder is dropped, so nothing would be written. Lower N_SAMPLES_PER_SHARD or "
                             "keep the remainder.", "N_SAMPLES_PER_SHARD")
        reporter = reporter or NullReporter()
        self.dirpath.mkdir(parents=True, exist_ok=True)
        types = {key: tf.dtypes.as_dtype(value).name for key, value in output_types.items()}
        shapes = {key: [int(d) for d in shape] for key, shape in output_shapes.items()}
        self.save(shapes, self.output_shapes_file)
        self.save(types, self.output_types_file)
        self.output_shapes, self.output_types = shapes, types
        headers = _tensor_headers(shapes, {key: tf.dtypes.as_dtype(name) for key, name in types.items()})
        iterator = iter(samples)
        total = min(n_samples, n_shards * n_samples_per_shard)
        written = 0
        shards = []
        for shard in range(n_shards):
            count = min(n_samples_per_shard, total - written)
            filepath = self.dirpath / f"{shard}.records"
            with tf.io.TFRecordWriter(str(filepath)) as writer:
                for _ in range(count):
                    reporter.check_canceled()
                    sample = next(iterator)
                    self._check_sample(sample, shapes, types)
                    writer.write(serialize_sample(sample, headers))
                    written += 1
                    if written % 64 == 0:
                        reporter.progress(written / total)
            shards.append({"file": filepath.name, "n_samples": count})
        reporter.progress(1.0)
        return shards

    @staticmethod
    def _check_sample(sample: Sample, shapes: dict[str, list[int]], types: dict[str, str]) -> None:
        if set(sample) != set(shapes):
            raise DatasetError(f"a sample has keys {sorted(sample)}, expected {sorted(shapes)}.")
        for key, value in sample.items():
            if list(value.shape) != shapes[key] or tf.dtypes.as_dtype(value.dtype).name != types[key]:
                raise DatasetError(f"sample '{key}' is {value.dtype} {list(value.shape)}, expected "
                                   f"{types[key]} {shapes[key]}.")

    def ds2tfrecord(self, dataset: Any, n_samples_per_shard: int = 100, drop_remainder: bool = True) -> None:
        """Write ``dataset.size`` samples of an :class:`otbtf_qgis.core.data.patches.Dataset` (OTBTF's method)."""
        samples = (dataset.read_one_sample() for _ in range(dataset.size))
        self.write(samples, dataset.size, dataset.output_shapes, dataset.output_types,
                   n_samples_per_shard=n_samples_per_shard, drop_remainder=drop_remainder)

    # ---------------------------------------------------------------- reading

    def _require_format(self) -> tuple[dict[str, list[int]], dict[str, str], list[Path]]:
        if not self.dirpath.is_dir():
            raise InputError(f"the TFRecords folder '{self.dirpath}' does not exist. Check the path.", self.parameter)
        if self.output_shapes is None or self.output_types is None:
            raise DatasetError(f"'{self.dirpath}' is not a TFRecords folder: {OUTPUT_SHAPES_NAME} or "
                               f"{OUTPUT_TYPES_NAME} is missing. Recreate the TFRecords.", self.parameter)
        shards = shard_files(self.dirpath)
        if not shards:
            raise DatasetError(f"the TFRecords folder '{self.dirpath}' has no *.records shard. Recreate the "
                               "TFRecords.", self.parameter)
        return self.output_shapes, self.output_types, shards

    def check(self) -> int:
        """Walk the framing of every shard (no TensorFlow read); return the number of records.

        Raises:
            DatasetError: naming the first truncated or corrupt shard.
        """
        _, _, shards = self._require_format()
        return sum(count_records(shard, self.parameter) for shard in shards)

    def verify(self) -> int:
        """Read every record of every shard, checking checksums (and that a record parses); return the count.

        This reads all the data once (at disk speed); :meth:`check` is the cheap version.

        Raises:
            DatasetError: naming the first truncated or corrupt shard.
        """
        shapes, types, shards = self._require_format()
        try:
            total = int(tf.data.TFRecordDataset([str(s) for s in shards], buffer_size=8 << 20)
                        .reduce(np.int64(0), lambda count, _: count + 1).numpy())
            for record in tf.data.TFRecordDataset(str(shards[0])).take(1):
                self.parse_tfrecord(record, types, shapes)  # the JSON files describe the records
        except tf.errors.DataLossError:
            # One pass over all shards is fast; find which one is damaged only when one is: its framing
            # first (which says where a shard is truncated), then its checksums.
            for shard in shards:
                count_records(shard, self.parameter)
                try:
                    _count_shard(tf.constant(str(shard)))
                except tf.errors.DataLossError as exc:
                    raise DatasetError(f"the TFRecords shard '{shard}' is corrupt ({_error_text(exc)}). "
                                       "Recreate the TFRecords.", self.parameter) from exc
            raise
        except tf.errors.InvalidArgumentError as exc:
            raise DatasetError(f"the records of '{shards[0]}' do not match {OUTPUT_SHAPES_NAME} and "
                               f"{OUTPUT_TYPES_NAME} ({_error_text(exc)}). Recreate the TFRecords.",
                               self.parameter) from exc
        return total

    @staticmethod
    def parse_tfrecord(example: tf.Tensor, features_types: Mapping[str, Any],
                       features_shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, tf.Tensor]:
        """Parse one serialized ``tf.train.Example`` into ``{key: tensor}`` (with static shapes when known)."""
        read_features = {key: tf.io.FixedLenFeature([], dtype=tf.string) for key in features_types}
        parsed = tf.io.parse_single_example(example, read_features)
        result = {}
        for key, dtype in features_types.items():
            tensor = tf.io.parse_tensor(parsed[key], out_type=tf.dtypes.as_dtype(dtype))
            if features_shapes is not None:
                tensor = tf.ensure_shape(tensor, [int(d) for d in features_shapes[key]])
            result[key] = tensor
        return result

    def as_dataset(self, batch_size: int | None = None, shuffle_buffer_size: int | None = None,
                   seed: int | None = None, drop_remainder: bool = True, n_workers: int = 1,
                   preprocessing_fn: Callable[..., Any] | None = None,
                   num_parallel_reads: int = 1) -> tf.data.Dataset:
        """The records as a ``tf.data.Dataset`` of dicts ``key -> tensor`` (batched when ``batch_size``).

        Args:
            batch_size: Samples per batch (``None``: unbatched).
            shuffle_buffer_size: Shuffle the shard order and the samples through a buffer
                of this size (``None``: file order).
            seed: Makes the order reproducible; without it, records may be parsed and
                returned in whatever order parallel work finishes (faster).
            drop_remainder: Drop the last incomplete batch.
            n_workers: Keep a multiple of this many shards (multi-worker training).
            preprocessing_fn: Optional function applied to each sample dict.
            num_parallel_reads: Shards read at once, by as many threads, when shuffling.
                Worth it on network storage, where every read waits; on local disks the
                system reads ahead of one sequential reader, which costs less.

        Raises:
            DatasetError: the folder is not a TFRecords folder or a shard is damaged.
        """
        return self._pipeline(batch_size, shuffle_buffer_size, seed, drop_remainder, n_workers,
                              sample_fn=preprocessing_fn, num_parallel_reads=num_parallel_reads)

    def _uniform_layout(self, shards: Sequence[Path], shapes: Mapping[str, Sequence[int]],
                        dtypes: Mapping[str, tf.DType], headers: Mapping[str, bytes | None]) -> RecordLayout | None:
        """The layout of every record of ``shards``, or ``None`` when they differ (framing checked on the way)."""
        record = first_record(shards, self.parameter)
        layout = RecordLayout.learn(record, shapes, dtypes, headers) if record is not None else None
        uniform = layout is not None
        for shard in shards:  # every shard is walked, so that a damaged one is named before reading starts
            if uniform:
                assert layout is not None
                uniform = layout.fits(shard, self.parameter)
            else:
                count_records(shard, self.parameter)
        return layout if uniform else None

    def _pipeline(self, batch_size: int | None, shuffle_buffer_size: int | None, seed: int | None,
                  drop_remainder: bool, n_workers: int, sample_fn: Callable[..., Any] | None = None,
                  batch_fn: Callable[..., Any] | None = None, num_parallel_reads: int = 1) -> tf.data.Dataset:
        """The reading pipeline behind :meth:`as_dataset` and :meth:`read`.

        Shards are read one after the other (in a new random order each epoch when
        shuffling, then through the shuffle buffer), records are parsed by whole batches
        (of at least :data:`PARSE_BATCH` records, a multiple of ``batch_size``, then split
        into batches of ``batch_size``: parsing costs per batch more than per byte) on
        every core, and batches are prefetched. ``sample_fn`` is applied to each parsed
        sample (then batches are formed after it); ``batch_fn``, a function that only
        restructures a batch's dict, is applied to each parsed batch.

        tf.data's autotuning is off (``AUTOTUNE`` parallelism then means one call per
        core): its optimisation thread costs CPU and, at the end of every epoch, makes
        the iterator's destruction wait for the optimisation round under way (we measured
        stalls of 20 to 150 ms on 100 ms epochs).
        """
        shapes, types, shards = self._require_format()
        dtypes = {key: tf.dtypes.as_dtype(value) for key, value in types.items()}
        headers = _tensor_headers(shapes, dtypes)
        layout = self._uniform_layout(shards, shapes, dtypes, headers)
        if n_workers > 1:
            shards = shards[: n_workers * (len(shards) // n_workers)]
            if not shards:
                raise DatasetError(f"fewer shards than the {n_workers} workers in '{self.dirpath}'. Write smaller "
                                   "shards (N_SAMPLES_PER_SHARD).", self.parameter)
        shuffle = bool(shuffle_buffer_size)
        deterministic = seed is not None or not shuffle
        files = tf.data.Dataset.from_tensor_slices([str(s) for s in shards])
        if shuffle:
            files = files.shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
        if shuffle and num_parallel_reads > 1:
            # Each reading thread hands over blocks of records: a hand-over per record costs more than the read.
            records = files.interleave(lambda file: tf.data.TFRecordDataset(file).batch(PARALLEL_READ_BLOCK),
                                       cycle_length=min(len(shards), num_parallel_reads),
                                       num_parallel_calls=min(len(shards), num_parallel_reads),
                                       deterministic=deterministic).unbatch()
        else:
            # One reader: no hand-over between threads per record, and the system reads ahead of it.
            records = tf.data.TFRecordDataset(files)
        options = tf.data.Options()
        options.autotune.enabled = False
        options.deterministic = deterministic
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.AUTO
        records = records.with_options(options)
        if shuffle:
            records = records.shuffle(int(shuffle_buffer_size or 1), seed=seed, reshuffle_each_iteration=True)
        features = {key: tf.io.FixedLenFeature([], tf.string) for key in types}

        def parse_batch(serialized: tf.Tensor) -> Any:
            # Every record was checked to have the layout: no per-batch check, no branch in the graph
            # (a smaller function also costs less to instantiate, which happens at every epoch).
            if layout is not None:
                decoded = layout.decode(serialized, shapes, dtypes)
            else:
                parsed = tf.io.parse_example(serialized, features)
                decoded = {key: _decode_batch(parsed[key], shapes[key], dtypes[key], headers[key]) for key in types}
            batch = serialized.shape[0]  # static with drop_remainder
            result = {key: tf.ensure_shape(decoded[key], [batch, *shapes[key]]) for key in types}
            return batch_fn(result) if batch_fn is not None else result

        per_sample = sample_fn is not None or not batch_size
        if per_sample:
            dataset = records.batch(PARSE_BATCH).map(parse_batch, num_parallel_calls=tf.data.AUTOTUNE,
                                                     deterministic=deterministic).unbatch()
            if sample_fn is not None:
                dataset = dataset.map(sample_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
            if batch_size:
                dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
            return dataset.prefetch(tf.data.AUTOTUNE)
        assert batch_size is not None
        group = -(-PARSE_BATCH // batch_size)  # batches parsed together
        if group == 1:
            dataset = records.batch(batch_size, drop_remainder=drop_remainder)
        else:
            dataset = records.batch(group * batch_size)
        dataset = dataset.map(parse_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        if group > 1:
            dataset = dataset.rebatch(batch_size, drop_remainder=drop_remainder)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def read(self, batch_size: int, target_keys: Sequence[str], n_workers: int = 1, drop_remainder: bool = True,
             shuffle_buffer_size: int | None = None, preprocessing_fn: Callable[..., Any] | None = None,
             shard_policy: Any = None, prefetch_buffer_size: Any = None, num_parallel_calls: Any = None,
             seed: int | None = None, **kwargs: Any) -> tf.data.Dataset:
        """Batches of ``(inputs, targets)`` dict pairs, as OTBTF's ``TFRecords.read``.

        Each parsed sample is one dict of every key; ``preprocessing_fn(sample, **kwargs)``,
        when given, returns the dict to train on (e.g. inputs renamed, labels one-hot
        encoded), and that dict is then split by ``target_keys`` (OTBTF 4's order: the
        function sees and returns a single dict).

        Args:
            batch_size: Samples per batch.
            target_keys: Keys that go to the targets dict (e.g. ``["labels"]``); the
                other keys are inputs.
            n_workers: Keep a multiple of this many shards (multi-worker training).
            drop_remainder: Drop the last incomplete batch.
            shuffle_buffer_size: Shuffle through a buffer of this size (``None``: no shuffle).
            preprocessing_fn: Optional ``fn(sample, **kwargs) -> sample`` on the sample dict.
            shard_policy: Accepted for OTBTF's signature; sharding across workers is
                ``tf.data``'s automatic policy.
            prefetch_buffer_size: Accepted for OTBTF's signature; batches are prefetched
                with ``tf.data``'s automatic buffer.
            num_parallel_calls: Accepted for OTBTF's signature; parsing runs on every core.
            seed: Makes the order reproducible.
            **kwargs: Passed to ``preprocessing_fn``.
        """
        keys = tuple(target_keys)

        def split(sample: dict[str, tf.Tensor]) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
            if preprocessing_fn is not None:
                sample = preprocessing_fn(sample, **kwargs)
            return split_targets(sample, keys)

        if preprocessing_fn is None:  # splitting keys works on whole batches as well as on samples
            return self._pipeline(batch_size, shuffle_buffer_size, seed, drop_remainder, n_workers, batch_fn=split)
        return self._pipeline(batch_size, shuffle_buffer_size, seed, drop_remainder, n_workers, sample_fn=split)
