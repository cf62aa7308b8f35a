"""otbtf:createenvironment through the real qgis_process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.processing.conftest import qgis_process, run_json

SYSTEM_PYTHON = "/usr/bin/python3"


def test_without_tensorflow_the_check_fails_with_the_install_command(dev_profile: Path, tmp_path: Path):
    if subprocess.run([SYSTEM_PYTHON, "-c", "import tensorflow"], capture_output=True).returncode == 0:
        pytest.skip("the system Python has TensorFlow")
    target = tmp_path / "env"
    done = qgis_process(["run", "otbtf:createenvironment", "--", f"OUTPUT_FOLDER={target}",
                         f"PYTHON={SYSTEM_PYTHON}", "PACKAGES= "], dev_profile)
    assert done.returncode != 0
    assert f"{target}/bin/python -m pip install tensorflow-cpu==2.21.0" in done.stdout + done.stderr
    assert (target / "bin" / "python").exists()


@pytest.mark.slow
def test_creates_environment_and_the_provider_uses_it(tmp_path: Path):
    profile = tmp_path / "profile"
    from tests.processing.conftest import ROOT

    enabled = qgis_process(["plugins", "enable", "otbtf_qgis"], profile, ROOT / "build" / "plugins")
    assert enabled.returncode == 0
    target = tmp_path / "env"
    created = run_json(["run", "otbtf:createenvironment", "--", f"OUTPUT_FOLDER={target}"], profile,
                       env={"OTBTF_QGIS_PYTHON": ""})
    assert created["results"]["TENSORFLOW"].startswith("2.21")
    info = run_json(["run", "otbtf:environmentinfo"], profile, env={"OTBTF_QGIS_PYTHON": ""})
    report = json.loads(info["results"]["REPORT"])
    assert report["python_executable"] == str(target / "bin" / "python")
