"""What a dataset folder holds (patches-images or TFRecords), without TensorFlow.

:func:`describe_dataset` is TensorFlow-free: it reads the folder's manifest
(patches-images) or ``output_shapes.json``/``output_types.json`` (TFRecords, ours or
OTBTF's) and says what each sample holds. :func:`otbtf_qgis.core.data.loading.open_dataset`
then reads either kind of folder as batches.

Keys are the source names given at extraction (``xs``, ``labels``, …) and ``class`` for
labels read from a point field. Shapes have no batch dimension: ``(rows, cols, bands)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from otbtf_qgis.core.data.formats import (
    CLASS_KEY,
    MANIFEST_NAME,
    OUTPUT_SHAPES_NAME,
    OUTPUT_TYPES_NAME,
    PATCHES_FORMAT,
    TFRECORDS_FORMAT,
    count_records,
    read_json_file,
    read_manifest,
    shard_files,
)
from otbtf_qgis.core.errors import DatasetError, InputError
from otbtf_qgis.core.io.raster import raster_info

#: Patches folders up to this many bytes are loaded in memory, to train on or to convert to TFRecords.
IN_MEMORY_MAX_BYTES = 1 << 30


def sample_bytes(shapes: Mapping[str, Sequence[int]], dtypes: Mapping[str, Any]) -> int:
    """Bytes of one sample: the sum over keys of the shape's product times the dtype's item size."""
    return sum(int(np.prod(shape)) * np.dtype(dtypes[key]).itemsize for key, shape in shapes.items())


@dataclass(frozen=True)
class PatchesFile:
    """One key of a patches folder: its patches-image and the geometry of a patch.

    Attributes:
        key: Dataset key (source name, or ``class``).
        path: The patches-image file.
        patch_size: ``(x, y)`` = (columns, rows) of one patch.
        bands: Band count.
        dtype: numpy dtype name.
        count: Number of patches in the image.
    """

    key: str
    path: Path
    patch_size: tuple[int, int]
    bands: int
    dtype: str
    count: int


@dataclass(frozen=True)
class DatasetDescription:
    """What a dataset folder holds.

    Attributes:
        kind: ``"patches"`` (patches-images) or ``"tfrecords"``.
        path: The folder.
        n_samples: Number of samples (``None`` when unknown).
        shapes: Per key, the sample shape without batch dimension ``(rows, cols, bands)``.
        dtypes: Per key, the numpy/TensorFlow dtype name (``"uint16"``, ``"int32"``, …).
        class_mapping: Class name → integer label (empty when the labels are plain integers).
        ignore_label: The label value that marks unlabelled pixels (``None`` when none).
        files: The patches-image of each key (patches folders; empty for TFRecords).
        manifest: The folder's ``manifest.json`` as read (``None`` without one).
    """

    kind: Literal["patches", "tfrecords"]
    path: str
    n_samples: int | None
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    class_mapping: dict[str, int]
    ignore_label: int | None
    files: tuple[PatchesFile, ...] = ()
    manifest: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def sample_bytes(self) -> int:
        """Bytes of one sample, all keys together (numeric dtypes; see :func:`sample_bytes`)."""
        return sample_bytes(self.shapes, self.dtypes)


def describe_dataset(folder: str | os.PathLike[str], parameter: str = "TRAIN_DATA") -> DatasetDescription:
    """Describe the dataset in ``folder`` without TensorFlow.

    Args:
        folder: A patches folder (output of patch extraction) or a TFRecords folder.
        parameter: The user-facing parameter named in errors.

    Raises:
        InputError: ``folder`` does not exist or is not a folder.
        DatasetError: the folder is not a dataset, has no sample, or is inconsistent.
    """
    path = _existing_folder(folder, parameter)
    manifest = read_manifest(path, parameter)
    if manifest is not None and manifest.get("format") == PATCHES_FORMAT:
        return _describe_patches(path, manifest, parameter)
    if (path / OUTPUT_SHAPES_NAME).is_file() or (manifest is not None and manifest.get("format") == TFRECORDS_FORMAT):
        return _describe_tfrecords(path, manifest, parameter)
    if manifest is None and any(path.glob("*_patches.tif")):
        return _describe_patches(path, None, parameter)
    inside = sorted(p.name for p in path.iterdir() if p.is_dir() and ((p / MANIFEST_NAME).is_file()
                                                                      or (p / OUTPUT_SHAPES_NAME).is_file()))
    hint = f" It holds the datasets {', '.join(inside)}: give one of them." if inside else ""
    raise DatasetError(
        f"'{path}' is not a dataset folder: it has neither a {MANIFEST_NAME} of a patches extraction nor the "
        f"{OUTPUT_SHAPES_NAME} of TFRecords.{hint} Give the output folder of Patches extraction or Create "
        "TFRecords.", parameter)


def _existing_folder(folder: str | os.PathLike[str], parameter: str) -> Path:
    text = os.fspath(folder).strip()
    if not text:
        raise InputError("no dataset folder given. Give the output folder of Patches extraction or Create "
                         "TFRecords.", parameter)
    path = Path(text)
    if path.is_file() and path.name == MANIFEST_NAME:
        path = path.parent
    if not path.exists():
        raise InputError(f"the dataset folder '{path}' does not exist. Check the path.", parameter)
    if not path.is_dir():
        raise InputError(f"'{path}' is a file, not a dataset folder. Give the output folder of Patches extraction "
                         "or Create TFRecords.", parameter)
    return path


def manifest_entries(folder: Path, manifest: Mapping[str, Any]) -> list[tuple[str, Path, tuple[int, int]]]:
    """``(key, patches-image, patch size (x, y))`` of each source and of the labels listed in a patches manifest."""
    entries = []
    for source in manifest.get("sources", []):
        size = source.get("patch_size")
        entries.append((str(source.get("key", source["name"])), folder / str(source["file"]),
                        (int(size[0]), int(size[1]))))
    labels = manifest.get("labels")
    if labels:
        entries.append((str(labels.get("key", CLASS_KEY)), folder / str(labels["file"]), (1, 1)))
    return entries


def patches_files(folder: str | os.PathLike[str], parameter: str = "TRAIN_DATA") -> list[PatchesFile]:
    """The keys of a patches folder with their files and patch geometry, checked against the files.

    With a manifest the patch sizes come from it (non-square patches work); a folder of
    OTBTF patches-images without manifest is read as ``<key>_patches.tif`` files of
    square patches (patch rows = image width), as OTBTF assumes.

    Raises:
        DatasetError: a file is missing or unreadable, or its size does not match the patches.
    """
    path = _existing_folder(folder, parameter)
    return _patches_files(path, read_manifest(path, parameter), parameter)


def _patches_files(path: Path, manifest: dict[str, Any] | None, parameter: str) -> list[PatchesFile]:
    """:func:`patches_files` of an existing folder whose manifest was read."""
    entries: list[tuple[str, Path, tuple[int, int] | None]] = []
    if manifest is not None:
        entries.extend(manifest_entries(path, manifest))
    else:
        for file in sorted(path.glob("*_patches.tif")):
            entries.append((file.name[: -len("_patches.tif")], file, None))
    if not entries:
        raise DatasetError(f"the patches folder '{path}' lists no source. Recreate it with Patches extraction.",
                           parameter)
    result = []
    for key, file, size in entries:
        if not file.is_file():
            raise DatasetError(f"the patches-image '{file}' of key '{key}' is missing. Recreate the dataset.",
                               parameter)
        info = raster_info(file, parameter)
        patch_size = size if size is not None else (info.width, info.width)
        if info.width != patch_size[0] or info.height % patch_size[1] != 0:
            raise DatasetError(
                f"the patches-image '{file}' is {info.width}x{info.height} pixels, which is not a column of "
                f"{patch_size[0]}x{patch_size[1]} patches. Recreate the dataset.", parameter)
        result.append(PatchesFile(key, file, patch_size, info.bands, info.dtype, info.height // patch_size[1]))
    return result


def _describe_patches(path: Path, manifest: dict[str, Any] | None, parameter: str) -> DatasetDescription:
    files = _patches_files(path, manifest, parameter)
    counts = {f.key: f.count for f in files}
    if len(set(counts.values())) != 1:
        raise DatasetError(f"the patches-images of '{path}' hold different numbers of patches ({counts}). "
                           "Recreate the dataset.", parameter)
    n_samples = next(iter(counts.values()))
    if manifest is not None and int(manifest.get("n_samples", n_samples)) != n_samples:
        raise DatasetError(f"the manifest of '{path}' announces {manifest.get('n_samples')} samples but the "
                           f"patches-images hold {n_samples}. Recreate the dataset.", parameter)
    if n_samples == 0:
        raise DatasetError(f"the dataset '{path}' has no sample. Extract patches again with more points.", parameter)
    return DatasetDescription(
        kind="patches", path=str(path), n_samples=n_samples,
        shapes={f.key: (f.patch_size[1], f.patch_size[0], f.bands) for f in files},
        dtypes={f.key: f.dtype for f in files},
        class_mapping=_class_mapping(manifest), ignore_label=_ignore_label(manifest), files=tuple(files),
        manifest=manifest)


def _describe_tfrecords(path: Path, manifest: dict[str, Any] | None, parameter: str) -> DatasetDescription:
    shapes_path, types_path = path / OUTPUT_SHAPES_NAME, path / OUTPUT_TYPES_NAME
    for required in (shapes_path, types_path):
        if not required.is_file():
            raise DatasetError(f"the TFRecords folder '{path}' has no {required.name}. Recreate the TFRecords.",
                               parameter)
    shapes_data, types_data = read_json_file(shapes_path, parameter), read_json_file(types_path, parameter)
    if not isinstance(shapes_data, dict) or not isinstance(types_data, dict) or set(shapes_data) != set(types_data):
        raise DatasetError(f"{OUTPUT_SHAPES_NAME} and {OUTPUT_TYPES_NAME} of '{path}' do not list the same keys. "
                           "Recreate the TFRecords.", parameter)
    if not shapes_data:
        raise DatasetError(f"the TFRecords folder '{path}' declares no key. Recreate the TFRecords.", parameter)
    try:
        shapes = {str(k): tuple(int(d) for d in v) for k, v in shapes_data.items()}
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{OUTPUT_SHAPES_NAME} of '{path}' is not a mapping of key to shape ({exc}).",
                           parameter) from exc
    shards = shard_files(path)
    if not shards:
        raise DatasetError(f"the TFRecords folder '{path}' has no *.records shard, so no sample. Recreate the "
                           "TFRecords.", parameter)
    n_samples = sum(count_records(shard, parameter) for shard in shards)
    if n_samples == 0:
        raise DatasetError(f"the TFRecords shards of '{path}' hold no sample. Recreate the TFRecords.", parameter)
    return DatasetDescription(
        kind="tfrecords", path=str(path), n_samples=n_samples, shapes=shapes,
        dtypes={str(k): str(v) for k, v in types_data.items()},
        class_mapping=_class_mapping(manifest), ignore_label=_ignore_label(manifest), manifest=manifest)


def _class_mapping(manifest: dict[str, Any] | None) -> dict[str, int]:
    mapping = (manifest or {}).get("class_mapping") or {}
    return {str(k): int(v) for k, v in mapping.items()}


def _ignore_label(manifest: dict[str, Any] | None) -> int | None:
    value = (manifest or {}).get("ignore_label")
    return None if value is None else int(value)
