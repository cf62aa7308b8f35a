from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from otbtf_qgis.core.errors import DependencyError, InputError
from otbtf_qgis.core.jobs.environment import DEFAULT_REQUIREMENTS, create_worker_environment, probe_python, venv_python
from otbtf_qgis.core.progress import Reporter

#: The Dask pins the environment installs with TensorFlow (serving on several machines).
DASK = ["dask[distributed]==2026.8.0", "distributed==2026.8.0"]

ROOT = Path(__file__).resolve().parents[3]
SYSTEM_PYTHON = "/usr/bin/python3"
needs_system_python = pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists(), reason="needs the system Python")


class Collect(Reporter):
    def __init__(self) -> None:
        self.values: list[float] = []
        self.messages: list[str] = []

    def progress(self, fraction: float) -> None:
        self.values.append(fraction)

    def info(self, message: str) -> None:
        self.messages.append(message)


@needs_system_python
def test_creates_a_venv_that_sees_gdal_and_reuses_it(tmp_path: Path):
    target = tmp_path / "env"
    reporter = Collect()
    result = create_worker_environment(target, SYSTEM_PYTHON, requirements=[], verify=False, reporter=reporter)
    python = venv_python(target)
    assert result == {"python": str(python), "tensorflow": None}
    check = subprocess.run([str(python), "-c", "import sys, osgeo; print(sys.prefix)"], capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.strip() == str(target)
    assert reporter.values[-1] == 1.0 and any("Creating the virtual environment" in m for m in reporter.messages)
    marker = target / "marker"
    marker.write_text("kept")
    create_worker_environment(target, SYSTEM_PYTHON, requirements=[], verify=False)
    assert marker.read_text() == "kept"


@needs_system_python
def test_verification_reports_missing_tensorflow_with_install_command(tmp_path: Path):
    target = tmp_path / "env"
    if subprocess.run([SYSTEM_PYTHON, "-c", "import tensorflow"], capture_output=True).returncode == 0:
        pytest.skip("the system Python has TensorFlow")
    with pytest.raises(DependencyError, match=r"env/bin/python -m pip install tensorflow-cpu==2\.21\.0"):
        create_worker_environment(target, SYSTEM_PYTHON, requirements=[], verify=True)


@needs_system_python
def test_pip_failure_is_reported_with_its_output(tmp_path: Path):
    with pytest.raises(DependencyError, match=r"pip failed to install \./no-such-wheel\.whl") as info:
        create_worker_environment(tmp_path / "env", SYSTEM_PYTHON, requirements=["./no-such-wheel.whl"],
                                  verify=False)
    assert info.value.parameter == "PACKAGES"


@needs_system_python
def test_bad_targets_and_interpreters(tmp_path: Path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty and is not a virtual environment") as info:
        create_worker_environment(busy, SYSTEM_PYTHON, requirements=[], verify=False)
    assert info.value.parameter == "OUTPUT_FOLDER"
    with pytest.raises(InputError, match="cannot run"):
        probe_python(str(tmp_path / "python42"))
    assert probe_python(SYSTEM_PYTHON)["osgeo"] is True


SUITABLE = {"version": [3, 11, 2], "osgeo": True, "venv": True, "ensurepip": True}


@pytest.mark.skipif(sys.platform == "win32", reason="the fake interpreter is a shell script")
@pytest.mark.parametrize("probe,message", [
    ({"version": [3, 9, 18]}, r"is Python 3\.9\.18; the worker needs Python 3\.10 or newer\.$"),
    ({"venv": False}, r"cannot create virtual environments \(no venv/ensurepip\)\. On Debian or Ubuntu: "
                      r"sudo apt-get install python3-venv$"),
    ({"ensurepip": False}, r"cannot create virtual environments \(no venv/ensurepip\)"),
    ({"osgeo": False}, r"has no GDAL Python bindings \(osgeo\)\. On Debian or Ubuntu: "
                       r"sudo apt-get install python3-gdal$"),
])
def test_probe_refuses_unsuitable_interpreters(tmp_path: Path, probe: dict, message: str):
    fake = tmp_path / "python3"
    fake.write_text(f"#!/bin/sh\necho '{json.dumps({**SUITABLE, **probe})}'\n")
    fake.chmod(0o755)
    with pytest.raises(InputError, match=f"^PYTHON: '{re.escape(str(fake))}' {message}") as info:
        probe_python(str(fake))
    assert info.value.parameter == "PYTHON"
    fake.write_text(f"#!/bin/sh\necho '{json.dumps(SUITABLE)}'\n")
    assert probe_python(str(fake)) == SUITABLE


@pytest.mark.slow
@needs_system_python
def test_full_environment_with_tensorflow(tmp_path: Path):
    result = create_worker_environment(tmp_path / "env", SYSTEM_PYTHON)
    assert result["tensorflow"].startswith("2.21") and result["numpy"] == "1.26.4"


def test_the_worker_pins_are_those_of_requirements_txt_and_the_readme():
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    pins = [line.split("#")[0].strip() for line in lines]
    assert sorted(p for p in pins if p) == sorted(DEFAULT_REQUIREMENTS)
    assert f"pip install {' '.join(DEFAULT_REQUIREMENTS)}" in (ROOT / "README.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------------ devices


class FakeNvidiaSmi:
    """``subprocess.run`` of an ``nvidia-smi -L`` that prints ``stdout`` and exits with ``returncode``."""

    def __init__(self, returncode: int, stdout: str) -> None:
        self.returncode, self.stdout = returncode, stdout
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        self.commands.append(command)
        return subprocess.CompletedProcess(command, self.returncode, self.stdout, "")


@pytest.mark.parametrize(("which", "returncode", "stdout", "expected"), [
    ("/usr/bin/nvidia-smi", 0, "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1234)\n", True),
    ("/usr/bin/nvidia-smi", 9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
     False),
    ("/usr/bin/nvidia-smi", 0, "No devices were found\n", False),
    (None, 0, "", False),
])
def test_nvidia_gpu_detection(monkeypatch, which, returncode, stdout, expected):
    from otbtf_qgis.core.jobs import environment

    fake = FakeNvidiaSmi(returncode, stdout)
    monkeypatch.setattr(environment.shutil, "which", lambda name: which if name == "nvidia-smi" else None)
    monkeypatch.setattr(environment.subprocess, "run", fake)
    assert environment.nvidia_gpu_present() is expected
    assert fake.commands == ([["/usr/bin/nvidia-smi", "-L"]] if which else [])


def test_nvidia_smi_that_cannot_start_means_no_gpu(monkeypatch):
    from otbtf_qgis.core.jobs import environment

    def fail(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(environment.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(environment.subprocess, "run", fail)
    assert environment.nvidia_gpu_present() is False


@pytest.mark.parametrize(("device", "platform", "gpu", "expected"), [
    ("auto", "linux", True, ["tensorflow[and-cuda]==2.21.0", "numpy==1.26.4", "tensorboard==2.21.0", *DASK]),
    ("auto", "linux", False, ["tensorflow-cpu==2.21.0", "numpy==1.26.4", "tensorboard==2.21.0", *DASK]),
    ("auto", "win32", True, ["tensorflow-cpu==2.21.0", "numpy==1.26.4", "tensorboard==2.21.0", *DASK]),
    ("auto", "darwin", True, ["tensorflow-cpu==2.21.0", "numpy==1.26.4", "tensorboard==2.21.0", *DASK]),
    ("cpu", "linux", True, ["tensorflow-cpu==2.21.0", "numpy==1.26.4", "tensorboard==2.21.0", *DASK]),
    ("cuda", "linux", False, ["tensorflow[and-cuda]==2.21.0", "numpy==1.26.4", "tensorboard==2.21.0", *DASK]),
])
def test_pip_requirements_for_each_device_and_platform(monkeypatch, device, platform, gpu, expected):
    from otbtf_qgis.core.jobs import environment

    monkeypatch.setattr(environment, "nvidia_gpu_present", lambda: gpu)
    resolved = environment.resolve_device(device, platform)
    assert environment.device_requirements(DEFAULT_REQUIREMENTS, resolved) == expected


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_cuda_outside_linux_is_an_error(platform):
    from otbtf_qgis.core.jobs.environment import resolve_device

    with pytest.raises(InputError) as error:
        resolve_device("cuda", platform)
    assert str(error.value) == (f"DEVICE: TensorFlow's CUDA packages (tensorflow[and-cuda]) exist for Linux only, not "
                                f"for '{platform}'. Choose DEVICE cpu (on Windows a GPU needs WSL2).")
    with pytest.raises(InputError, match=r"^DEVICE: 'gpu' is not one of auto, cpu, cuda"):
        resolve_device("gpu", platform)


def test_cuda_keeps_the_version_of_any_tensorflow_cpu_requirement():
    from otbtf_qgis.core.jobs.environment import device_requirements

    assert device_requirements(["tensorflow_cpu>=2.20,<2.22", "rasterio"], "cuda") == [
        "tensorflow[and-cuda]>=2.20,<2.22", "rasterio"]
    assert device_requirements(["tensorflow-cpu"], "cuda") == ["tensorflow[and-cuda]"]
    assert device_requirements(["tensorflow-cpu==2.21.0"], "cpu") == ["tensorflow-cpu==2.21.0"]


def test_gpu_summary():
    from otbtf_qgis.core.jobs.configs.environmentinfo import gpu_summary

    assert gpu_summary([]) == "none"
    assert gpu_summary([
        {"name": "/physical_device:GPU:0", "model": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0"},
        {"name": "/physical_device:GPU:1", "model": "", "compute_capability": None},
    ]) == "/physical_device:GPU:0 (NVIDIA A100-SXM4-40GB, compute capability 8.0), /physical_device:GPU:1"


@pytest.mark.parametrize(("requirements", "other"), [
    (["tensorflow-cpu==2.21.0", "numpy==1.26.4"], "tensorflow"),
    (["tensorflow[and-cuda]==2.21.0", "numpy==1.26.4"], "tensorflow-cpu"),
    (["numpy==1.26.4", "Tensorflow_CPU>=2.20"], "tensorflow"),
    (["numpy==1.26.4", "tensorboard==2.21.0"], None),
])
def test_switching_device_removes_the_other_tensorflow_build(requirements, other):
    from otbtf_qgis.core.jobs.environment import other_tensorflow_build

    assert other_tensorflow_build(requirements) == other
