"""The plugin as a user of the checkout drives it: the real qgis_process, headless."""

from __future__ import annotations

from pathlib import Path

from .conftest import qgis_process


def test_provider_is_listed(dev_profile: Path):
    done = qgis_process(["list"], dev_profile)
    assert done.returncode == 0, done.stderr
    assert "OTBTF" in done.stdout
    assert "otbtf:environmentinfo\tEnvironment information" in done.stdout


def test_environment_info_reports_tensorflow_from_the_worker(run_alg):
    result = run_alg("environmentinfo")
    outputs = result["results"]
    assert outputs["TENSORFLOW"].startswith("2.21")
    assert outputs["KERAS"].startswith("3.")
    assert outputs["NUMPY"] == "1.26.4"
    assert "CPU" in outputs["DEVICES"]


def test_missing_tensorflow_fails_with_install_command(dev_profile: Path, tmp_path: Path):
    import subprocess

    if subprocess.run(["/usr/bin/python3", "-c", "import tensorflow"], capture_output=True).returncode == 0:
        import pytest

        pytest.skip("the system Python has TensorFlow")
    done = qgis_process(["run", "otbtf:environmentinfo"], dev_profile, env={"OTBTF_QGIS_PYTHON": "/usr/bin/python3"})
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert "TensorFlow is not installed in the worker Python '/usr/bin/python3'" in text
    assert "-m pip install tensorflow-cpu==2.21.0" in text
