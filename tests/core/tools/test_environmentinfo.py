"""The ``environmentinfo`` job: the GPUs TensorFlow sees (none on these machines)."""

from __future__ import annotations

from otbtf_qgis.core.jobs.configs.environmentinfo import EnvironmentInfoConfig
from otbtf_qgis.core.progress import Reporter
from otbtf_qgis.core.tools.environmentinfo import gpu_report, run


class Messages(Reporter):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def info(self, message: str) -> None:
        self.messages.append(message)


def test_gpu_report_from_tensorflow_device_details():
    assert gpu_report("/physical_device:GPU:0", {"device_name": "Tesla T4", "compute_capability": (7, 5)}) == {
        "name": "/physical_device:GPU:0", "model": "Tesla T4", "compute_capability": "7.5"}
    assert gpu_report("/physical_device:GPU:1", {}) == {"name": "/physical_device:GPU:1", "model": "",
                                                        "compute_capability": None}


def test_the_report_says_no_gpu_here():
    reporter = Messages()
    info = run(EnvironmentInfoConfig(), reporter)
    assert info["gpus"] == [] and "GPUs: none" in reporter.messages
