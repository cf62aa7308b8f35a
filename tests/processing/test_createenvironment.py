"""otbtf:createenvironment through the real qgis_process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.processing.conftest import qgis_process, run_json

#: The Dask pins of the default requirements (serving on several machines).
DASK = ["dask[distributed]==2026.8.0", "distributed==2026.8.0"]

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


@pytest.mark.parametrize(("device", "gpu", "expected"), [
    (0, True, ["tensorflow[and-cuda]==2.21.0", "numpy==1.26.4", "tensorboard==2.21.0", *DASK]),  # auto
    (0, False, ["tensorflow-cpu==2.21.0", "numpy==1.26.4", "tensorboard==2.21.0", *DASK]),
    (1, True, ["tensorflow-cpu==2.21.0", "numpy==1.26.4", "tensorboard==2.21.0", *DASK]),  # cpu
    (2, False, ["tensorflow[and-cuda]==2.21.0", "numpy==1.26.4", "tensorboard==2.21.0", *DASK]),  # cuda
])
def test_device_chooses_the_tensorflow_package(qgis_app, monkeypatch, device, gpu, expected):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    from otbtf_qgis.core.jobs import environment
    from tests.processing.conftest import algorithm

    monkeypatch.setattr(environment.sys, "platform", "linux")
    monkeypatch.setattr(environment, "nvidia_gpu_present", lambda: gpu)
    alg = algorithm("createenvironment")
    parameters = {"PACKAGES": " ".join(environment.DEFAULT_REQUIREMENTS), "DEVICE": device}  # the default
    assert alg.requirements(parameters, QgsProcessingContext(), QgsProcessingFeedback()) == expected


def test_cuda_on_windows_is_refused_naming_device(qgis_app, monkeypatch):
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

    from otbtf_qgis.core.jobs import environment
    from tests.processing.conftest import algorithm

    monkeypatch.setattr(environment.sys, "platform", "win32")
    alg = algorithm("createenvironment")
    with pytest.raises(QgsProcessingException, match=r"^DEVICE: TensorFlow's CUDA packages \(tensorflow\[and-cuda\]\) "
                                                    "exist for Linux only, not for 'win32'"):
        alg.processAlgorithm({"DEVICE": 2, "OUTPUT_FOLDER": "/nonexistent/env"}, QgsProcessingContext(),
                             QgsProcessingFeedback())
