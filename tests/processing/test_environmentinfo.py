"""``otbtf:environmentinfo``: its (empty) job config, the error without TensorFlow in process, and a real run
through qgis_process."""

from __future__ import annotations

import subprocess

import pytest
from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

from otbtf_qgis.core.jobs.codec import config_to_dict
from otbtf_qgis.core.jobs.configs.environmentinfo import EnvironmentInfoConfig
from tests.processing.conftest import algorithm, build_config

SYSTEM_PYTHON = "/usr/bin/python3"


def test_config_has_no_setting(qgis_app):
    config = build_config("environmentinfo")
    assert config == EnvironmentInfoConfig() and config_to_dict(config) == {}


def test_environment_info_reports_tensorflow_from_the_worker(run_alg):
    result = run_alg("environmentinfo")
    outputs = result["results"]
    assert outputs["TENSORFLOW"].startswith("2.21")
    assert outputs["KERAS"].startswith("3.")
    assert outputs["NUMPY"] == "1.26.4"
    assert "CPU" in outputs["DEVICES"]
    assert outputs["GPUS"] == "none"


def test_missing_tensorflow_fails_with_install_command(qgis_app, monkeypatch):
    if subprocess.run([SYSTEM_PYTHON, "-c", "import tensorflow"], capture_output=True).returncode == 0:
        pytest.skip("the system Python has TensorFlow")
    monkeypatch.setenv("OTBTF_QGIS_PYTHON", SYSTEM_PYTHON)
    with pytest.raises(QgsProcessingException) as raised:
        algorithm("environmentinfo").run({}, QgsProcessingContext(), QgsProcessingFeedback(), {}, False)
    text = str(raised.value)
    assert f"TensorFlow is not installed in the worker Python '{SYSTEM_PYTHON}'" in text
    assert "-m pip install tensorflow-cpu==2.21.0" in text
