"""Open a dataset folder for training: patches-images or TFRecords, as batches of dicts.

:func:`open_dataset` returns a ``tf.data.Dataset`` of dicts ``key -> batched tensor`` in
the stored dtypes, whatever the kind of folder (see
:func:`otbtf_qgis.core.data.description.describe_dataset`).
"""

from __future__ import annotations

import os
from typing import Any

from otbtf_qgis.core.data.description import DatasetDescription, describe_dataset
from otbtf_qgis.core.data.formats import shard_files
from otbtf_qgis.core.data.patches import patches_tf_dataset
from otbtf_qgis.core.data.tfrecords import TFRecords
from otbtf_qgis.core.errors import DatasetError, InputError

#: TFRecords folders up to this size have every record checksum verified when opened
#: (a full read at disk speed); bigger ones only have their framing checked.
FULL_VERIFY_MAX_BYTES = 1 << 30
#: Shuffle buffer (samples) for TFRecords. Shards are also read in a new random order each
#: epoch, and Create TFRecords writes samples in random order, so a moderate buffer
#: mixes well; a big one costs memory and throughput.
SHUFFLE_BUFFER = 512


def open_dataset(folder: str | os.PathLike[str] | DatasetDescription, batch_size: int, shuffle: bool = True,
                 seed: int | None = None, drop_remainder: bool = True, parameter: str = "TRAIN_DATA") -> Any:
    """Open a dataset folder as a ``tf.data.Dataset`` of dicts ``key -> (batch, rows, cols, bands)``.

    TensorFlow is imported here, not when this module is imported (so the return type
    is spelled ``Any``: describing a dataset does not need TensorFlow).

    One pass over the dataset is one epoch (iterate again for the next; the order is
    shuffled again each epoch when ``shuffle``). Tensors keep their stored dtypes.

    Patches-images that fit in memory (up to 1 GiB) are loaded once and sliced in
    TensorFlow; bigger ones are read patch by patch in parallel. TFRecords shards are read
    in a new random order each epoch (through a 512-sample shuffle buffer), parsed a
    batch at a time in parallel and prefetched; their framing is checked
    first (and every checksum when the folder is at most 1 GiB), so a damaged shard is
    named before training starts.

    Args:
        folder: A patches folder or a TFRecords folder, or its description (from
            :func:`describe_dataset`, which is then not done again).
        batch_size: Samples per batch.
        shuffle: Shuffle the samples (each epoch).
        seed: Makes the order reproducible.
        drop_remainder: Drop the last incomplete batch.
        parameter: The user-facing parameter named in errors.

    Raises:
        InputError: bad ``batch_size`` or folder.
        DatasetError: the folder is not a dataset, is empty, or a shard is corrupt.
    """
    if batch_size < 1:
        raise InputError(f"the batch size must be at least 1, got {batch_size}.", "BATCH_SIZE")
    description = folder if isinstance(folder, DatasetDescription) else describe_dataset(folder, parameter)
    if drop_remainder and description.n_samples is not None and description.n_samples < batch_size:
        raise DatasetError(f"'{description.path}' holds {description.n_samples} samples, fewer than one batch of "
                           f"{batch_size}: every batch would be dropped. Lower BATCH_SIZE or add samples.", parameter)
    if description.kind == "patches":
        return patches_tf_dataset(description.files or description.path, batch_size, shuffle=shuffle, seed=seed,
                                  drop_remainder=drop_remainder, parameter=parameter)
    records = TFRecords(description.path, parameter=parameter)
    total_bytes = sum(shard.stat().st_size for shard in shard_files(description.path))
    if total_bytes <= FULL_VERIFY_MAX_BYTES:
        records.verify()
    return records.as_dataset(batch_size, shuffle_buffer_size=min(description.n_samples or 1, SHUFFLE_BUFFER)
                              if shuffle else None, seed=seed, drop_remainder=drop_remainder)
