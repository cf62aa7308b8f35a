"""Tiny synthetic training datasets: patches folders (as patch extraction writes them) and TFRecords.

The images are smooth random fields (a few bands), the labels a simple function of them
(the index of the brightest band, per pixel), so a small CPU training run can learn them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from osgeo import gdal, gdal_array

gdal.UseExceptions()

CLASS_NAMES = ("water", "crop", "tree")


def smooth_fields(rng: np.random.Generator, n: int, size: int, bands: int, cell: int = 8) -> np.ndarray:
    """``n`` patches ``(size, size, bands)`` in [0, 1], smooth at the scale of ``cell`` pixels."""
    coarse = rng.random((n, size // cell + 2, size // cell + 2, bands))
    # bilinear upsampling of the coarse grid, separable
    positions = (np.arange(size) + 0.5) / cell + 0.5
    low = np.floor(positions).astype(int)
    weight = positions - low
    rows = coarse[:, low] * (1 - weight)[None, :, None, None] + coarse[:, low + 1] * weight[None, :, None, None]
    return rows[:, :, low] * (1 - weight)[None, None, :, None] + rows[:, :, low + 1] * weight[None, None, :, None]


def make_samples(n: int, size: int = 32, bands: int = 3, seed: int = 0,
                 cell: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint16, values 1000–9000) and labels (uint8, the brightest band's index)."""
    rng = np.random.default_rng(seed)
    fields = smooth_fields(rng, n, size, bands, cell)
    images = (1000 + 8000 * fields).astype(np.uint16)
    labels = np.argmax(fields, axis=-1).astype(np.uint8)[..., None]
    return images, labels


def _write_stack(path: Path, patches: np.ndarray) -> None:
    """Stack ``(n, rows, cols, bands)`` patches in rows: a patches-image."""
    n, rows, cols, bands = patches.shape
    image = patches.reshape(n * rows, cols, bands)
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), cols, n * rows, bands,
                                                   gdal_array.NumericTypeCodeToGDALTypeCode(patches.dtype))
    for band in range(bands):
        dataset.GetRasterBand(band + 1).WriteArray(image[:, :, band])
    dataset = None


def write_patches_folder(folder: Path, images: np.ndarray, labels: np.ndarray | None = None,
                         classes: np.ndarray | None = None, class_names: tuple[str, ...] = CLASS_NAMES,
                         ignore_label: int | None = None, source: str = "xs") -> Path:
    """A patches folder per docs/formats.md: ``<source>_patches.tif``, label patches and/or a class image."""
    folder.mkdir(parents=True, exist_ok=True)
    n, rows, cols, bands = images.shape
    _write_stack(folder / f"{source}_patches.tif", images)
    sources = [{"name": source, "path": f"/data/{source}.tif", "patch_size": [cols, rows], "bands": bands,
                "dtype": images.dtype.name, "nodata": None, "file": f"{source}_patches.tif"}]
    manifest: dict = {"format": "otbtf_qgis-patches/1", "sources": sources,
                      "class_mapping": {name: i for i, name in enumerate(class_names)}, "n_samples": n,
                      "point_ids": list(range(n)), "rejected": {"outside": 0, "nodata": 0}}
    if labels is not None:
        _write_stack(folder / "labels_patches.tif", labels)
        sources.append({"name": "labels", "path": "/data/labels.tif", "patch_size": [cols, rows], "bands": 1,
                        "dtype": labels.dtype.name, "nodata": None, "file": "labels_patches.tif"})
    if classes is not None:
        _write_stack(folder / "labels.tif", classes.astype(np.int32).reshape(n, 1, 1, 1))
        manifest["labels"] = {"file": "labels.tif", "field": "class", "dtype": "int32"}
    if ignore_label is not None:
        manifest["ignore_label"] = ignore_label
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


def write_tfrecords_folder(folder: Path, samples: dict[str, np.ndarray], per_shard: int = 16) -> Path:
    """A TFRecords folder of the samples (dict key → ``(n, rows, cols, bands)``)."""
    from otbtf_qgis.core.data.tfrecords import TFRecords

    n = len(next(iter(samples.values())))
    records = TFRecords(folder)
    records.write(({k: v[i] for k, v in samples.items()} for i in range(n)), n,
                  {k: list(v.shape[1:]) for k, v in samples.items()}, {k: v.dtype.name for k, v in samples.items()},
                  n_samples_per_shard=per_shard, drop_remainder=False)
    return folder
