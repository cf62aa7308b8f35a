"""Dataset folders on disk: manifests, TFRecords shard framing, and the overwrite rule.

TensorFlow-free, so that describing a dataset, checking an output folder or counting the
records of a TFRecords folder works in any process (Processing included). The formats
are those of ``docs/formats.md``:

- a *patches* folder (output of patch extraction) holds ``<name>_patches.tif`` per
  source, ``labels.tif`` for a class field, and ``manifest.json`` with
  ``"format": "otbtf_qgis-patches/1"``;
- a *TFRecords* folder holds ``output_shapes.json``, ``output_types.json``, shards
  ``0.records``, ``1.records``, … and (when we wrote it) ``manifest.json`` with
  ``"format": "otbtf_qgis-tfrecords/1"``.

The overwrite rule (:func:`check_output_folder`): an output folder that exists must be
empty or hold a previous output of ours (our manifest, or only sub-folders that each
hold one); it is then replaced as a whole when the new output is complete. Any other
non-empty folder is refused, so a mistyped path never deletes a user's files.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from otbtf_qgis.core.errors import DatasetError, InputError
from otbtf_qgis.core.jobs.outputs import PARTIAL_MARK

MANIFEST_NAME = "manifest.json"
PATCHES_FORMAT = "otbtf_qgis-patches/1"
TFRECORDS_FORMAT = "otbtf_qgis-tfrecords/1"
OUR_FORMATS = (PATCHES_FORMAT, TFRECORDS_FORMAT)
OUTPUT_SHAPES_NAME = "output_shapes.json"
OUTPUT_TYPES_NAME = "output_types.json"
SHARD_SUFFIX = ".records"
#: Key of the class labels read from a point field, in datasets and TFRecords.
CLASS_KEY = "class"
#: File of the 1 x N class image in a patches folder.
LABELS_FILE = "labels.tif"
#: GDAL metadata items of a label raster (written by patches selection, read by extraction).
IGNORE_LABEL_ITEM = "OTBTF_IGNORE_LABEL"
CLASS_NAMES_ITEM = "OTBTF_CLASS_NAMES"

V = TypeVar("V")


def patches_file_name(source_name: str) -> str:
    """File of a source's patches-image in a patches folder: ``<name>_patches.tif``."""
    return f"{source_name}_patches.tif"


def read_manifest(folder: str | os.PathLike[str], parameter: str = "INPUT") -> dict[str, Any] | None:
    """Return the manifest of ``folder``, or ``None`` when it has none.

    Raises:
        DatasetError: the manifest is not valid JSON or not an object with a ``format``.
    """
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    data = read_json_file(path, parameter)
    if not isinstance(data, dict) or not isinstance(data.get("format"), str):
        raise DatasetError(f"'{path}' is not an otbtf_qgis manifest (no \"format\"). Recreate the dataset.", parameter)
    return data


def _format_json(value: Any, indent: int = 0) -> str:
    """Indented JSON whose lists of scalars stay on one line (``point_ids`` can be long)."""
    pad = "  " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(str(k))}: {_format_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        items = [pad + _format_json(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(value)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON (a manifest, ``output_shapes.json``, …)."""
    Path(path).write_text(_format_json(data) + "\n", encoding="utf-8")


def is_our_output(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` holds an output of ours: our manifest, or only sub-folders holding one."""
    path = Path(folder)
    if not path.is_dir():
        return False
    if _has_our_manifest(path):
        return True
    entries = [e for e in path.iterdir() if PARTIAL_MARK not in e.name]
    return bool(entries) and all(e.is_dir() and _has_our_manifest(e) for e in entries)


def _has_our_manifest(folder: Path) -> bool:
    try:
        manifest = read_manifest(folder)
    except DatasetError:
        return False
    return manifest is not None and manifest.get("format") in OUR_FORMATS


def check_output_folder(folder: str | os.PathLike[str], parameter: str = "OUTPUT_DIR") -> Path:
    """Apply the overwrite rule to an output folder before any work starts; return it as a Path.

    The folder may not exist yet, be empty, or hold a previous output of ours (which the
    new output replaces once complete).

    Raises:
        InputError: naming ``parameter`` when the path is empty, is a file, or is a
            non-empty folder that is not an output of ours.
    """
    text = os.fspath(folder).strip()
    if not text:
        raise InputError("no output folder given. Choose a new or empty folder.", parameter)
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise InputError(f"'{path}' is a file, not a folder. Choose a new or empty folder.", parameter)
    if path.is_dir():
        entries = sorted(e.name for e in path.iterdir() if PARTIAL_MARK not in e.name)
        if entries and not is_our_output(path):
            shown = ", ".join(entries[:5]) + (", …" if len(entries) > 5 else "")
            raise InputError(
                f"the folder '{path}' already holds files that are not an otbtf_qgis output ({shown}). "
                "An output folder must be new, empty, or a previous output of this algorithm (which is "
                "then replaced). Choose another folder or empty this one.", parameter)
    return path


def shard_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The ``*.records`` shards of a TFRecords folder, in numeric order (``2`` before ``10``)."""
    def key(path: Path) -> tuple[int, int | str]:
        return (0, int(path.stem)) if path.stem.isdigit() else (1, path.stem)

    return sorted((p for p in Path(folder).glob(f"*{SHARD_SUFFIX}") if p.is_file()), key=key)


# TFRecord framing: uint64 length, uint32 masked CRC-32C of the length, data, uint32
# masked CRC-32C of the data. Checking the header CRCs needs no TensorFlow and only
# 12 bytes per record, so it is cheap enough to run before every read.
_CRC32C_TABLE: list[int] = []


def _crc32c(data: bytes) -> int:
    if not _CRC32C_TABLE:
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
            _CRC32C_TABLE.append(crc)
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C TFRecord files store (``rotate right 15, plus 0xa282ead8``)."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def count_records(shard: str | os.PathLike[str], parameter: str = "INPUT") -> int:
    """Count the records of a TFRecord file by walking its framing (the data is skipped).

    Raises:
        DatasetError: naming the shard when it is truncated or its framing is corrupt.
    """
    return scan_records(shard, parameter)[0]


def scan_records(shard: str | os.PathLike[str], parameter: str = "INPUT", length: int | None = None,
                 skeleton: Sequence[tuple[int, bytes]] = ()) -> tuple[int, bool]:
    """Walk the framing of a TFRecord file; return its record count and whether every record fits a layout.

    A record fits when it is ``length`` bytes long and holds ``content`` at ``offset``
    for each ``(offset, content)`` of ``skeleton``; only those bytes are read. Without
    ``length`` the answer is ``False``.

    Raises:
        DatasetError: naming the shard when it is truncated or its framing is corrupt.
    """
    path = Path(shard)
    size = path.stat().st_size
    count = 0
    position = 0
    fits = length is not None
    # A leading stretch of the skeleton is read with the header: one read per record in the common case.
    head = len(skeleton[0][1]) if fits and skeleton and skeleton[0][0] == 0 else 0
    rest = skeleton[1:] if head else skeleton
    with path.open("rb", buffering=0) as handle:  # unbuffered: small reads at seeks, not 8 KiB each
        while position < size:
            block = handle.read(12 + head)
            if len(block) < 12:
                raise DatasetError(f"the TFRecords shard '{path}' is truncated (record {count} at byte {position} "
                                   "has an incomplete header). Recreate the TFRecords.", parameter)
            length_bytes = block[:8]
            (record_length,) = struct.unpack("<Q", length_bytes)
            (length_crc,) = struct.unpack("<I", block[8:12])
            if masked_crc32c(length_bytes) != length_crc:
                raise DatasetError(f"the TFRecords shard '{path}' is corrupt (bad length checksum of record {count} "
                                   f"at byte {position}). Recreate the TFRecords.", parameter)
            end = position + 12 + record_length + 4
            if end > size:
                raise DatasetError(f"the TFRecords shard '{path}' is truncated (record {count} needs {end} bytes, "
                                   f"the file has {size}). Recreate the TFRecords.", parameter)
            if fits:
                fits = record_length == length and block[12:] == (skeleton[0][1] if head else b"")
                for offset, content in rest if fits else ():
                    handle.seek(position + 12 + offset)
                    if handle.read(len(content)) != content:
                        fits = False
                        break
            position = end
            handle.seek(position)
            count += 1
    return count, fits


def first_record(shards: Sequence[str | os.PathLike[str]], parameter: str = "INPUT") -> bytes | None:
    """The data of the first record of the first non-empty shard (``None`` when all are empty).

    The data checksum is not verified here; TensorFlow verifies it when the records are read.

    Raises:
        DatasetError: naming the shard when its first record is truncated or its framing is corrupt.
    """
    for shard in shards:
        path = Path(shard)
        with path.open("rb") as handle:
            header = handle.read(12)
            if not header:
                continue
            if len(header) == 12 and masked_crc32c(header[:8]) == struct.unpack("<I", header[8:])[0]:
                (length,) = struct.unpack("<Q", header[:8])
                data = handle.read(length + 4)
                if len(data) == length + 4:
                    return data[:length]
        scan_records(path, parameter)  # the first record is damaged: raises the precise error
        raise DatasetError(f"the first record of the TFRecords shard '{path}' cannot be read. Recreate the TFRecords.",
                           parameter)
    return None


def read_json_file(path: Path, parameter: str) -> Any:
    """Read a JSON file of a dataset folder with a clear error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"'{path}' cannot be read ({exc}). Recreate the dataset.", parameter) from exc


_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_key_name(name: str, parameter: str) -> str:
    """Check a dataset key (a source name): letters, digits and ``_``, not starting with a digit.

    Raises:
        InputError: naming ``parameter`` for an invalid name.
    """
    if not _NAME_PATTERN.match(name):
        raise InputError(f"'{name}' is not a valid source name: use letters, digits and '_', starting with a "
                         "letter (e.g. xs, labels, s2_10m).", parameter)
    return name


def split_targets(sample: Mapping[str, V], target_keys: Collection[str]) -> tuple[dict[str, V], dict[str, V]]:
    """Split a sample dict into ``(inputs, targets)``: the ``target_keys`` go to the targets (OTBTF's rule)."""
    return ({k: v for k, v in sample.items() if k not in target_keys},
            {k: v for k, v in sample.items() if k in target_keys})
