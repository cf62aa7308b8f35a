"""Scripts written for OTBTF's Python API run unchanged, inside a checkout of OTBTF as its examples are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import otbtf_qgis.core as otbtf_api
from otbtf_qgis.core.compat.otbtf import otbtf_package_folder
from tests.core.training_data import write_patches_folder

ROOT = Path(__file__).resolve().parents[3]

# A script in the style of OTBTF's examples: OTBTF's top-level names, its modules, and a helper
# module of the checkout imported through the ``otbtf`` package.
SCRIPT = '''
import argparse, json
import numpy as np
import tensorflow as tf
from otbtf import Buffer, DatasetFromPatchesImages, ModelBase, TFRecords, layers, ops
from otbtf.model import ModelBase as ModelBaseFromModule
from otbtf.examples.mine import helper

parser = argparse.ArgumentParser()
parser.add_argument("--xs", nargs="+")
parser.add_argument("--labels", nargs="+")
parser.add_argument("--outdir")
params = parser.parse_args()

dataset = DatasetFromPatchesImages(filenames_dict={"input_xs_patches": params.xs, "labels_patches": params.labels})
dataset.to_tfrecords(output_dir=params.outdir, drop_remainder=False)

def preprocessing_fn(examples):
    return {"input_xs": examples["input_xs_patches"],
            "predictions": ops.one_hot(labels=examples["labels_patches"], nb_classes=helper.N_CLASSES)}

batches = list(TFRecords(params.outdir).read(batch_size=2, target_keys=["predictions"],
                                              preprocessing_fn=preprocessing_fn, drop_remainder=False))
buffer = Buffer(2)
buffer.add(1)
print(json.dumps({"same_model_base": ModelBase is ModelBaseFromModule, "n_batches": len(batches),
                  "inputs": sorted(batches[0][0]), "targets": sorted(batches[0][1]),
                  "onehot_shape": list(batches[0][1]["predictions"].shape),
                  "labels_sum": float(sum(tf.reduce_sum(t["predictions"]).numpy() for _, t in batches)),
                  "argmax_layer": layers.Argmax.__module__, "buffer": buffer.size()}))
'''


def make_checkout(root: Path) -> Path:
    """A checkout laid out as OTBTF's: ``otbtf/__init__.py`` (which must not run), ``otbtf/examples/mine/``."""
    package = root / "otbtf"
    mine = package / "examples" / "mine"
    mine.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('the checkout\\'s own otbtf/__init__.py ran')\n")
    (package / "examples" / "__init__.py").write_text("")
    (mine / "__init__.py").write_text("")
    (mine / "helper.py").write_text("N_CLASSES = 3\n")
    script = mine / "create_and_read.py"
    script.write_text(textwrap.dedent(SCRIPT))
    return script


def test_otbtf_names_are_exported_by_the_core() -> None:
    assert set(otbtf_api.__all__) == {"Dataset", "DatasetFromPatchesImages", "PatchesImagesReader",
                                      "PatchesReaderBase", "IteratorBase", "RandomIterator", "Buffer", "TFRecords",
                                      "ModelBase", "ops", "layers"}
    from otbtf_qgis.core.data.patches import DatasetFromPatchesImages
    from otbtf_qgis.core.models import layers

    assert otbtf_api.DatasetFromPatchesImages is DatasetFromPatchesImages and otbtf_api.layers is layers


def test_an_otbtf_script_in_a_checkout_runs_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 10000, (5, 16, 16, 2)).astype(np.uint16)
    labels = rng.integers(0, 3, (5, 16, 16, 1)).astype(np.uint8)
    folder = write_patches_folder(tmp_path / "patches", images, labels)
    checkout = tmp_path / "repo"
    script = make_checkout(checkout)
    assert otbtf_package_folder(script) == checkout / "otbtf"
    # Run from the checkout's root, as OTBTF's README does: its otbtf/ folder is then importable.
    done = subprocess.run([sys.executable, "-m", "otbtf_qgis.core.compat.otbtf", str(script),
                           "--xs", str(folder / "xs_patches.tif"), "--labels", str(folder / "labels_patches.tif"),
                           "--outdir", str(tmp_path / "tfrecords")], capture_output=True, text=True, cwd=checkout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"same_model_base": True, "n_batches": 3, "inputs": ["input_xs"], "targets": ["predictions"],
                      "onehot_shape": [2, 16, 16, 3], "labels_sum": 5 * 16 * 16.0,
                      "argmax_layer": "otbtf_qgis.core.models.layers", "buffer": 1}
    assert sorted(p.name for p in (tmp_path / "tfrecords").iterdir()) == [
        "0.records", "output_shapes.json", "output_types.json"]


def test_a_missing_script_is_named(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "otbtf_qgis.core.compat.otbtf", str(tmp_path / "nope.py")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"ERROR: the script '{tmp_path / 'nope.py'}' does not exist."
