"""Patches-images datasets, with the API of OTBTF's ``otbtf.dataset``.

A *patches-image* stacks the patches of one source vertically: patch ``i`` is rows
``[i * psy, (i + 1) * psy)`` of an image ``psx`` wide (see ``docs/formats.md``).

- :class:`PatchesImagesReader` gives random access to the samples of several sources
  (one or more patches-images each), in memory or streamed from disk. Unlike OTBTF it
  does not assume square patches: patch sizes come from the folder's manifest or from
  the ``patch_sizes`` argument.
- Iterators (:class:`RandomIterator` by default, :class:`SequentialIterator`) choose the
  order in which samples are read; any :class:`IteratorBase` subclass can be plugged in.
- :class:`Dataset` / :class:`DatasetFromPatchesImages` read samples in a background
  thread into a buffer and serve them as a ``tf.data.Dataset``
  (:meth:`Dataset.get_tf_dataset`) or write them to TFRecords (:meth:`Dataset.to_tfrecords`).
- :func:`patches_tf_dataset` is the fast path used by training (:func:`otbtf_qgis.core.data.loading.open_dataset`):
  whole batches gathered in TensorFlow when the data fits in memory, parallel reads otherwise.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf

from otbtf_qgis.core.data.description import IN_MEMORY_MAX_BYTES, PatchesFile, manifest_entries, patches_files, sample_bytes
from otbtf_qgis.core.data.formats import read_manifest, split_targets
from otbtf_qgis.core.data.tfrecords import TFRecords
from otbtf_qgis.core.errors import DatasetError, InputError
from otbtf_qgis.core.io.raster import open_raster, raster_info, read_window
from otbtf_qgis.core.io.windows import Window

Array = npt.NDArray[Any]
Sample = dict[str, Array]
Stats = dict[str, dict[str, Array]]


class Buffer:
    """A bounded list of objects, as OTBTF's ``Buffer``.

    Args:
        max_length: How many objects it holds at most.
    """

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self.container: list[Any] = []

    def size(self) -> int:
        """How many objects it holds."""
        return len(self.container)

    def add(self, new_element: Any) -> None:
        """Append ``new_element``.

        Raises:
            OverflowError: the buffer is already complete.
        """
        if self.is_complete():
            raise OverflowError(f"the buffer already holds its {self.max_length} objects.")
        self.container.append(new_element)

    def is_complete(self) -> bool:
        """Whether it holds ``max_length`` objects."""
        return self.size() == self.max_length


class PatchesReaderBase(ABC):
    """Random access to the samples of a dataset."""

    @abstractmethod
    def get_sample(self, index: int) -> Sample:
        """Return sample ``index`` as a dict ``key -> (rows, cols, bands)`` array."""

    @abstractmethod
    def get_stats(self) -> Stats:
        """Per key, per band ``min``, ``max``, ``mean`` and ``std`` over all samples."""

    @abstractmethod
    def get_size(self) -> int:
        """Number of samples."""


class _PatchesImage:
    """One patches-image file: its geometry and a GDAL handle per thread."""

    def __init__(self, path: str, patch_size: tuple[int, int] | None, key: str) -> None:
        self.path = path
        self.info = raster_info(path, "INPUT")
        width = self.info.width
        self.patch_size = patch_size if patch_size is not None else (width, width)
        psx, psy = self.patch_size
        if width != psx or self.info.height % psy != 0:
            raise DatasetError(f"'{path}' ({width}x{self.info.height} pixels) is not a column of {psx}x{psy} "
                               f"patches (source '{key}'). Check the patch size of this source.", "INPUT")
        self.count = self.info.height // psy
        self._local = threading.local()

    def handle(self) -> Any:
        """This thread's GDAL dataset (GDAL handles must not be shared between threads)."""
        dataset = getattr(self._local, "dataset", None)
        if dataset is None:
            dataset = open_raster(self.path, "INPUT")
            self._local.dataset = dataset
        return dataset

    def read(self, first: int, count: int) -> Array:
        """Patches ``[first, first + count)`` as ``(count, psy, psx, bands)``."""
        psx, psy = self.patch_size
        rows = read_window(self.handle(), Window(0, first * psy, psx, count * psy))
        return rows.reshape(count, psy, psx, self.info.bands)


class PatchesImagesReader(PatchesReaderBase):
    """Read access to the samples of one or more sources stored as patches-images.

    Each source (dict key) may have several patches-images, concatenated in order; every
    source must hold the same number of patches, and the images of one source the same
    bands and dtype. Sample ``i`` is ``{key: (psy, psx, bands) array}``.

    Args:
        filenames_dict: ``{key: [patches_image_1, …]}`` (a single path is accepted too).
        use_streaming: Read patches from disk on demand instead of loading everything.
        scalar_dict: Optional ``{key: [value per patches-image]}`` added to each sample
            (one scalar per image, as in OTBTF).
        patch_sizes: Optional ``{key: (x, y)}`` or ``{key: size}``. By default the size
            comes from the manifest of the image's folder, else patches are square.

    Raises:
        DatasetError: sources hold different numbers of patches, or a source's images
            differ in bands or dtype, or an image is not a column of patches.
    """

    def __init__(self, filenames_dict: Mapping[str, str | os.PathLike[str] | Sequence[str | os.PathLike[str]]],
                 use_streaming: bool = False, scalar_dict: Mapping[str, Sequence[Any]] | None = None,
                 patch_sizes: Mapping[str, int | tuple[int, int]] | None = None) -> None:
        if not filenames_dict:
            raise InputError("no patches-image given.", "INPUT")
        self.use_streaming = use_streaming
        self.images: dict[str, list[_PatchesImage]] = {}
        for key, value in filenames_dict.items():
            paths = [value] if isinstance(value, (str, os.PathLike)) else list(value)
            if not paths:
                raise InputError(f"source '{key}' has no patches-image.", "INPUT")
            size = _patch_size_for(key, [os.fspath(p) for p in paths], patch_sizes)
            self.images[key] = [_PatchesImage(os.fspath(p), size, key) for p in paths]
        self.scalar_dict = {key: [np.asarray(v) for v in values] for key, values in (scalar_dict or {}).items()}
        n_images = {key: len(images) for key, images in self.images.items()}
        n_images.update({key: len(values) for key, values in self.scalar_dict.items()})
        if len(set(n_images.values())) != 1:
            raise DatasetError(f"every source must have the same number of patches-images, got {n_images}.", "INPUT")
        counts = {key: sum(image.count for image in images) for key, images in self.images.items()}
        if len(set(counts.values())) != 1:
            raise DatasetError(f"the sources hold different numbers of patches: {counts}. Each sample needs one "
                               "patch of every source; extract all sources from the same points.", "INPUT")
        for key, images in self.images.items():
            if len({(im.info.bands, im.info.dtype, im.patch_size) for im in images}) != 1:
                found = ", ".join(f"{im.path}: {im.info.bands} bands {im.info.dtype}" for im in images)
                raise DatasetError(f"the patches-images of source '{key}' differ in bands or data type ({found}).",
                                   "INPUT")
        first = next(iter(self.images.values()))
        self.ds_sizes = [image.count for image in first]
        self.size = sum(self.ds_sizes)
        self._starts = np.cumsum([0, *self.ds_sizes])
        self.patches_buffer: dict[str, Array] = {}
        if not use_streaming:
            for key, images in self.images.items():
                parts = [image.read(0, image.count) for image in images]
                self.patches_buffer[key] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    @property
    def keys(self) -> list[str]:
        """The source keys, in the order given."""
        return list(self.images)

    def shape(self, key: str) -> tuple[int, int, int]:
        """``(rows, cols, bands)`` of a sample of ``key``."""
        image = self.images[key][0]
        return (image.patch_size[1], image.patch_size[0], image.info.bands)

    def dtype(self, key: str) -> np.dtype[Any]:
        """The numpy dtype of ``key``."""
        return np.dtype(self.images[key][0].info.dtype)

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self.size:
            raise IndexError(f"sample {index} out of range [0, {self.size})")
        image = int(np.searchsorted(self._starts, index, side="right")) - 1
        return image, index - int(self._starts[image])

    def get_sample(self, index: int) -> Sample:
        """Return sample ``index`` (``0 <= index < size``) as ``{key: (psy, psx, bands)}``."""
        image, offset = self._locate(int(index))
        sample = {key: values[image] for key, values in self.scalar_dict.items()}
        if self.use_streaming:
            for key, images in self.images.items():
                sample[key] = images[image].read(offset, 1)[0]
        else:
            for key, patches in self.patches_buffer.items():
                sample[key] = patches[index]
        return sample

    def read_range(self, start: int, stop: int) -> dict[str, Array]:
        """Samples ``[start, stop)`` as ``{key: (stop - start, psy, psx, bands)}`` (one read per image)."""
        if not 0 <= start <= stop <= self.size:
            raise IndexError(f"range [{start}, {stop}) out of [0, {self.size}]")
        if not self.use_streaming:
            return {key: patches[start:stop] for key, patches in self.patches_buffer.items()}
        result: dict[str, list[Array]] = {key: [] for key in self.images}
        position = start
        while position < stop:
            image, offset = self._locate(position)
            count = min(stop - position, self.ds_sizes[image] - offset)
            for key, images in self.images.items():
                result[key].append(images[image].read(offset, count))
            position += count
        return {key: parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0) if parts
                else np.empty((0, *self.shape(key)), self.dtype(key)) for key, parts in result.items()}

    def get_stats(self) -> Stats:
        """Per key, per band ``min``, ``max``, ``mean``, ``std`` (float64) over every pixel of every sample.

        The samples are taken in chunks (read once for all keys in streaming mode), so
        memory stays bounded.
        """
        chunk = 1024
        bands = {key: self.shape(key)[2] for key in self.images}
        minimum = {key: np.full(n, np.inf) for key, n in bands.items()}
        maximum = {key: np.full(n, -np.inf) for key, n in bands.items()}
        total = {key: np.zeros(n) for key, n in bands.items()}
        total_sq = {key: np.zeros(n) for key, n in bands.items()}
        for start in range(0, self.size, chunk):
            for key, values in self.read_range(start, min(self.size, start + chunk)).items():
                pixels = values.reshape(-1, bands[key]).astype(np.float64)
                minimum[key] = np.minimum(minimum[key], pixels.min(axis=0))
                maximum[key] = np.maximum(maximum[key], pixels.max(axis=0))
                total[key] += pixels.sum(axis=0)
                total_sq[key] += np.square(pixels).sum(axis=0)
        stats: Stats = {}
        for key in self.images:
            count = max(self.size * self.shape(key)[0] * self.shape(key)[1], 1)
            mean = total[key] / count
            std = np.sqrt(np.maximum(total_sq[key] / count - np.square(mean), 0.0))
            stats[key] = {"min": minimum[key], "max": maximum[key], "mean": mean, "std": std}
        return stats

    def get_size(self) -> int:
        """Number of samples."""
        return self.size

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], use_streaming: bool = False,
                    parameter: str = "INPUT") -> PatchesImagesReader:
        """The reader of a patches folder (output of patch extraction), with its patch sizes."""
        return cls.from_files(patches_files(folder, parameter), use_streaming=use_streaming)

    @classmethod
    def from_files(cls, files: Sequence[PatchesFile], use_streaming: bool = False) -> PatchesImagesReader:
        """The reader of the patches-images of a patches folder (see :func:`otbtf_qgis.core.data.description.patches_files`)."""
        return cls({f.key: [str(f.path)] for f in files}, use_streaming=use_streaming,
                   patch_sizes={f.key: f.patch_size for f in files})


def _patch_size_for(key: str, paths: list[str],
                    patch_sizes: Mapping[str, int | tuple[int, int]] | None) -> tuple[int, int] | None:
    """The patch size given for ``key``, else the one the manifest beside its first image lists, else ``None``."""
    if patch_sizes and key in patch_sizes:
        value = patch_sizes[key]
        return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
    image = Path(paths[0]).resolve()
    try:
        manifest = read_manifest(image.parent, "INPUT")
    except (DatasetError, InputError):
        return None
    for _, file, size in manifest_entries(image.parent, manifest or {}):
        if file.resolve() == image:
            return size
    return None


class IteratorBase(ABC):
    """Chooses the order in which a :class:`Dataset` reads samples (an endless iterator of indices)."""

    def __init__(self, patches_reader: PatchesReaderBase) -> None:
        self.size = patches_reader.get_size()

    def __iter__(self) -> Iterator[int]:
        return self

    @abstractmethod
    def __next__(self) -> int:
        """The next sample index."""


class RandomIterator(IteratorBase):
    """Every index once per cycle, in a new random order each cycle.

    Args:
        patches_reader: The reader whose samples are iterated.
        seed: Makes the sequence reproducible.
    """

    def __init__(self, patches_reader: PatchesReaderBase, seed: int | None = None) -> None:
        super().__init__(patches_reader)
        self.rng = np.random.default_rng(seed)
        self.indices = self.rng.permutation(self.size)
        self.count = 0

    def __next__(self) -> int:
        if self.count == self.size:
            self.indices = self.rng.permutation(self.size)
            self.count = 0
        index = int(self.indices[self.count])
        self.count += 1
        return index


class SequentialIterator(IteratorBase):
    """Indices ``0, 1, …, size - 1``, then again from 0."""

    def __init__(self, patches_reader: PatchesReaderBase) -> None:
        super().__init__(patches_reader)
        self.count = 0

    def __next__(self) -> int:
        index = self.count
        self.count = (self.count + 1) % self.size
        return index


def _mine(reader: PatchesReaderBase, iterator: Iterator[int], buffer: queue.Queue[Sample | BaseException],
          stop: threading.Event) -> None:
    """Background reading: put samples in ``buffer`` until ``stop`` is set."""
    try:
        while not stop.is_set():
            sample = reader.get_sample(next(iterator))
            while not stop.is_set():
                try:
                    buffer.put(sample, timeout=0.1)
                    break
                except queue.Full:
                    continue
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
        buffer.put(exc)


class Dataset:
    """Serves the samples of a reader, read ahead by a background thread, as OTBTF's ``Dataset``.

    Args:
        patches_reader: Where the samples come from.
        buffer_length: How many samples the background thread reads ahead.
        iterator_cls: The iterator class (called with ``patches_reader=``) that orders
            the samples; ``functools.partial(RandomIterator, seed=1)`` for a fixed order.
        max_nb_of_samples: Optional cap on the number of samples per epoch.
    """

    def __init__(self, patches_reader: PatchesReaderBase, buffer_length: int = 128,
                 iterator_cls: Callable[..., IteratorBase] = RandomIterator,
                 max_nb_of_samples: int | None = None) -> None:
        self.patches_reader = patches_reader
        size = patches_reader.get_size()
        if size == 0:
            raise DatasetError("the dataset has no sample.", "INPUT")
        self.size = min(size, max_nb_of_samples) if max_nb_of_samples else size
        self.iterator = iterator_cls(patches_reader=patches_reader)
        one_sample = patches_reader.get_sample(0)
        self.output_shapes = {key: tuple(int(d) for d in value.shape) for key, value in one_sample.items()}
        self.output_types = {key: tf.dtypes.as_dtype(value.dtype) for key, value in one_sample.items()}
        self.buffer_length = max(1, min(buffer_length, self.size))
        self.tot_wait = 0.0
        self._buffer: queue.Queue[Sample | BaseException] = queue.Queue(maxsize=self.buffer_length)
        self._stop = threading.Event()
        self._miner: threading.Thread | None = None
        self._read_lock = threading.Lock()
        self.tf_dataset = tf.data.Dataset.from_generator(
            self._generator,
            output_signature={key: tf.TensorSpec(shape, self.output_types[key])
                              for key, shape in self.output_shapes.items()})

    def read_one_sample(self) -> Sample:
        """The next sample of the iterator's order (waits for the background thread if needed)."""
        with self._read_lock:
            if self._miner is None:
                self._miner = threading.Thread(target=_mine, name="otbtf-patches-miner", daemon=True,
                                               args=(self.patches_reader, self.iterator, self._buffer, self._stop))
                self._miner.start()
            start = time.perf_counter()
            item = self._buffer.get()
            self.tot_wait += time.perf_counter() - start
        if isinstance(item, BaseException):
            raise item
        return item

    def _generator(self) -> Iterator[Sample]:
        for _ in range(self.size):
            yield self.read_one_sample()

    def get_stats(self) -> Stats:
        """The reader's statistics (see :meth:`PatchesImagesReader.get_stats`)."""
        return self.patches_reader.get_stats()

    def get_tf_dataset(self, batch_size: int, drop_remainder: bool = True,
                       preprocessing_fn: Callable[..., Any] | None = None,
                       targets_keys: Sequence[str] | None = None) -> tf.data.Dataset:
        """A ``tf.data.Dataset`` of batches; one iteration is one epoch of ``size`` samples.

        Args:
            batch_size: Samples per batch.
            drop_remainder: Drop the last incomplete batch.
            preprocessing_fn: Optional function applied to each sample dict (e.g. one-hot
                labels); it must return a dict.
            targets_keys: When given, elements are ``(inputs, targets)`` dict pairs, the
                form Keras ``fit`` takes.
        """
        dataset = self.tf_dataset
        if preprocessing_fn is not None:
            dataset = dataset.map(preprocessing_fn)
        if targets_keys:
            keys = tuple(targets_keys)
            dataset = dataset.map(lambda sample: split_targets(sample, keys))
        return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)

    def to_tfrecords(self, output_dir: str | os.PathLike[str], n_samples_per_shard: int = 100,
                     drop_remainder: bool = True) -> None:
        """Write ``size`` samples (in the iterator's order) as TFRecords in ``output_dir``."""
        TFRecords(output_dir).ds2tfrecord(self, n_samples_per_shard=n_samples_per_shard,
                                          drop_remainder=drop_remainder)

    def get_total_wait_in_seconds(self) -> float:
        """Seconds the consumer waited for samples (an I/O bottleneck shows here)."""
        return self.tot_wait

    def close(self) -> None:
        """Stop the background thread."""
        self._stop.set()

    def __del__(self) -> None:
        self._stop.set()


class DatasetFromPatchesImages(Dataset):
    """A :class:`Dataset` over patches-images (see :class:`PatchesImagesReader`).

    Args:
        filenames_dict: ``{key: [patches_image, …]}``.
        use_streaming: Read patches from disk on demand instead of loading them.
        buffer_length: How many samples are read ahead.
        iterator_cls: The iterator class (default :class:`RandomIterator`).
        max_nb_of_samples: Optional cap on the samples per epoch.
        patch_sizes: Optional ``{key: (x, y)}`` for non-square patches outside a patches folder.
    """

    def __init__(self, filenames_dict: Mapping[str, str | os.PathLike[str] | Sequence[str | os.PathLike[str]]],
                 use_streaming: bool = False, buffer_length: int = 128,
                 iterator_cls: Callable[..., IteratorBase] = RandomIterator, max_nb_of_samples: int | None = None,
                 patch_sizes: Mapping[str, int | tuple[int, int]] | None = None) -> None:
        reader = PatchesImagesReader(filenames_dict, use_streaming=use_streaming, patch_sizes=patch_sizes)
        super().__init__(reader, buffer_length=buffer_length, iterator_cls=iterator_cls,
                         max_nb_of_samples=max_nb_of_samples)


def patches_tf_dataset(folder: str | os.PathLike[str] | Sequence[PatchesFile], batch_size: int, shuffle: bool = True,
                       seed: int | None = None, drop_remainder: bool = True,
                       parameter: str = "TRAIN_DATA") -> tf.data.Dataset:
    """The samples of a patches folder as batches of dicts, for training.

    ``folder`` may also be the folder's files (see :func:`otbtf_qgis.core.data.description.patches_files`).
    Data up to :data:`~otbtf_qgis.core.data.description.IN_MEMORY_MAX_BYTES` is loaded once and whole
    batches are gathered from it in TensorFlow; bigger data is read batch by batch from
    disk, in parallel (GDAL releases the GIL while it reads).
    """
    files = patches_files(folder, parameter) if isinstance(folder, (str, os.PathLike)) else folder
    reader = PatchesImagesReader.from_files(files, use_streaming=True)
    keys = reader.keys
    size = reader.size
    shapes = {key: reader.shape(key) for key in keys}
    in_memory = sample_bytes(shapes, {key: reader.dtype(key) for key in keys}) * size <= IN_MEMORY_MAX_BYTES
    indices = tf.data.Dataset.range(size)
    if shuffle:
        indices = indices.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    batches = indices.batch(batch_size, drop_remainder=drop_remainder)
    if in_memory:
        constants = {key: tf.constant(array) for key, array in reader.read_range(0, size).items()}

        def gather(batch_indices: tf.Tensor) -> dict[str, tf.Tensor]:
            return {key: tf.gather(values, batch_indices) for key, values in constants.items()}

        return batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE,
                           deterministic=True).prefetch(tf.data.AUTOTUNE)
    dtypes = [tf.dtypes.as_dtype(reader.dtype(k)) for k in keys]

    def read_batch(batch_indices: Array) -> list[Array]:
        order = np.argsort(batch_indices)  # read in file order, return in the shuffled order
        samples = [reader.get_sample(int(i)) for i in batch_indices[order]]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return [np.stack([samples[j][k] for j in inverse]) for k in keys]

    def load(batch_indices: tf.Tensor) -> dict[str, tf.Tensor]:
        arrays = tf.numpy_function(read_batch, [batch_indices], dtypes, stateful=False)
        return {key: tf.ensure_shape(array, (None, *shapes[key])) for key, array in zip(keys, arrays, strict=True)}

    return batches.map(load, num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=seed is not None or not shuffle).prefetch(tf.data.AUTOTUNE)
