"""``otbtf:createtfrecords`` through the real qgis_process, from train and valid patches folders."""

from __future__ import annotations

import json
from pathlib import Path

from .sampling_data import make_image, manifest


def test_train_and_valid_folders_to_tfrecords(dev_profile, run_alg, tmp_path: Path):
    image = make_image(tmp_path / "image.tif")
    counts = run_alg("patchesselection", INPUT=image, PATCH_SIZE=8, STRATEGY="chessboard",
                     OUTPUT_TRAIN=tmp_path / "train.gpkg", OUTPUT_VALID=tmp_path / "valid.gpkg")["results"]
    for name in ("train", "valid"):
        run_alg("patchesextraction", SOURCES=image, PATCH_SIZES="8", POINTS=tmp_path / f"{name}.gpkg",
                OUTPUT_DIR=tmp_path / "patches" / name)
    result = run_alg("createtfrecords", INPUT=[tmp_path / "patches" / "train", tmp_path / "patches" / "valid"],
                     N_SAMPLES_PER_SHARD=10, OUTPUT_DIR=tmp_path / "tfrecords")["results"]
    # 10 x 8 positions minus the one holding the nodata corner, split on alternating cells.
    assert counts["N_TRAIN"] + counts["N_VALID"] == 79
    assert result["N_SAMPLES"] == 79 and result["OUTPUT_DIR"] == str(tmp_path / "tfrecords")
    for name, key in (("train", "N_TRAIN"), ("valid", "N_VALID")):
        folder = tmp_path / "tfrecords" / name
        assert manifest(folder)["n_samples"] == counts[key]
        assert len(list(folder.glob("*.records"))) == -(-counts[key] // 10)
        assert json.loads((folder / "output_shapes.json").read_text()) == {"xs": [8, 8, 3]}
        assert json.loads((folder / "output_types.json").read_text()) == {"xs": "uint16"}
