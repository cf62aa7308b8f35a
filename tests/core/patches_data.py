"""Patches folders for dataset tests, made by the real extraction from encoded rasters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from osgeo import gdal

from otbtf_qgis.core.data.patchesextraction import PatchesExtractionConfig, patches_extraction
from tests.core.conftest import encoded_values, make_raster
from tests.vector_data import write_points

X0, Y0 = 500000.0, 4500000.0
CLASSES = ["water", "crop", "tree"]


def make_patches_folder(root: Path, name: str = "train", n_points: int = 23, seed: int = 0,
                        sizes: str = "5x3,2") -> Path:
    """Extract ``n_points`` samples (all kept) of two sources and a text class into ``root/name``.

    Sources: ``xs`` uint16, 4 bands, 10 m; ``xs2`` float32, 1 band, 20 m. Classes cycle
    through water, crop, tree.
    """
    root.mkdir(parents=True, exist_ok=True)
    xs = root / "xs.tif"
    if not xs.exists():
        make_raster(xs, encoded_values(60, 60, 4, "uint16"))
        make_raster(root / "xs2.tif", encoded_values(30, 30, 1, "float32") + 0.25,
                    geotransform=(X0, 20.0, 0.0, Y0, 0.0, -20.0))
    rng = np.random.default_rng(seed)
    cols = rng.integers(5, 55, n_points) + 0.5
    rows = rng.integers(5, 55, n_points) + 0.5
    points = write_points(root / f"{name}.gpkg", [(X0 + c * 10, Y0 - r * 10) for c, r in zip(cols, rows, strict=True)],
                          fields={"id": list(range(1000, 1000 + n_points)),
                                  "name": [CLASSES[i % 3] for i in range(n_points)]})
    patches_extraction(PatchesExtractionConfig(sources=(str(xs), str(root / "xs2.tif")), points=str(points),
                                               output_dir=str(root / name), patch_sizes=sizes, class_field="name"))
    return root / name


def read_patches(folder: Path) -> dict[str, np.ndarray]:
    """The samples of a patches folder as ``{key: (n, rows, cols, bands)}``, read with GDAL directly."""
    manifest = json.loads((folder / "manifest.json").read_text())
    result = {}
    entries = [(s["name"], s["file"], s["patch_size"]) for s in manifest["sources"]]
    if manifest["labels"]:
        entries.append(("class", manifest["labels"]["file"], [1, 1]))
    for key, file, (psx, psy) in entries:
        array = gdal.Open(str(folder / file)).ReadAsArray()
        array = array[None] if array.ndim == 2 else array
        bands = array.shape[0]
        result[key] = np.transpose(array, (1, 2, 0)).reshape(-1, psy, psx, bands)
    return result
