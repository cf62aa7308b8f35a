"""The README's Python example runs as written (on a small patches folder made here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```python\nimport tensorflow as tf") + len("```python\n")
    return text[start:text.index("```", start)]


def test_readme_python_example_runs(tmp_path: Path):
    from tests.core.training_data import write_patches_folder

    rng = np.random.default_rng(0)
    images = rng.integers(0, 10000, (16, 64, 64, 4)).astype(np.uint16)
    labels = rng.integers(0, 4, (16, 64, 64, 1)).astype(np.uint8)
    write_patches_folder(tmp_path / "out" / "patches" / "train", images, labels)
    code = readme_python_example().replace("epochs=10", "epochs=1")
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "tfrecords" / "train" / "output_shapes.json").exists()
    assert (tmp_path / "out" / "my_savedmodel" / "saved_model.pb").exists()
