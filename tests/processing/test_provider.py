"""The provider and the worker runner inside a QGIS application (pytest-qgis)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback

from otbtf_qgis.processing import runner as worker_module
from otbtf_qgis.processing.provider import OtbtfProvider
from otbtf_qgis.processing.runner import worker_python


@pytest.fixture
def provider(qgis_app):
    provider = OtbtfProvider()
    assert QgsApplication.processingRegistry().addProvider(provider)
    yield provider
    QgsApplication.processingRegistry().removeProvider(provider)


def test_provider_identity_and_algorithms(provider):
    assert (provider.id(), provider.name()) == ("otbtf", "OTBTF")
    assert not provider.icon().isNull()
    ids = sorted(alg.id() for alg in provider.algorithms())
    # The ids the README documents; they are stable (models and scripts name them).
    assert ids == ["otbtf:accuracyassessment", "otbtf:createenvironment", "otbtf:createtfrecords",
                   "otbtf:environmentinfo", "otbtf:modelserve", "otbtf:patchesextraction", "otbtf:patchesselection",
                   "otbtf:receptivefield", "otbtf:trainmodel"]
    for alg in provider.algorithms():
        assert alg.name() == alg.name().lower() and alg.groupId() == alg.groupId().lower()
        assert alg.shortHelpString() and not alg.icon().isNull()
        assert type(alg.createInstance()) is type(alg)


def test_worker_python_prefers_the_environment_variable(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("OTBTF_QGIS_PYTHON", "/opt/custom/python")
    assert worker_python() == "/opt/custom/python"
    monkeypatch.delenv("OTBTF_QGIS_PYTHON")
    assert Path(worker_python()).exists()


def test_worker_python_defaults_to_the_environment_createenvironment_makes(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("OTBTF_QGIS_PYTHON", raising=False)
    monkeypatch.setattr(worker_module, "configured_python", lambda: "")
    monkeypatch.setattr(worker_module, "default_environment_folder", lambda: tmp_path / "venv")
    assert worker_python() != str(tmp_path / "venv" / "bin" / "python")
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    assert worker_python() == str(python)
    monkeypatch.setattr(worker_module, "configured_python", lambda: "/opt/configured/python")
    assert worker_python() == "/opt/configured/python"


def test_default_environment_folder_is_in_the_qgis_profile(qgis_app):
    folder = worker_module.default_environment_folder()
    assert folder == Path(QgsApplication.qgisSettingsDirPath()) / "otbtf_qgis" / "venv"


def test_feedback_receives_progress_and_messages(monkeypatch):
    monkeypatch.setenv("OTBTF_QGIS_PYTHON", sys.executable)
    feedback = QgsProcessingFeedback()
    seen: list[float] = []
    feedback.progressChanged.connect(seen.append)
    result = worker_module.run_job("diagnostics", {"steps": 4, "step_seconds": 0.06}, feedback)
    assert result["steps"] == 4
    assert seen and seen[-1] == 100.0


def test_worker_error_becomes_processing_exception_naming_parameter(monkeypatch):
    monkeypatch.setenv("OTBTF_QGIS_PYTHON", sys.executable)
    with pytest.raises(QgsProcessingException, match=r"^STEPS: expected an integer"):
        worker_module.run_job("diagnostics", {"steps": "x"}, QgsProcessingFeedback())


def test_cancel_from_feedback_stops_worker_and_removes_output(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("OTBTF_QGIS_PYTHON", sys.executable)
    feedback = QgsProcessingFeedback()
    out = tmp_path / "out.tif"
    threading.Timer(0.8, feedback.cancel).start()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        worker_module.run_job("diagnostics", {"steps": 100, "step_seconds": 0.05, "output": str(out)}, feedback,
                              outputs=[str(out)])
    assert list(tmp_path.iterdir()) == []


def test_class_map_style_loads_paletted_with_class_names(qgis_app, tmp_path: Path):
    import numpy as np
    from qgis.core import QgsRasterLayer

    from otbtf_qgis.core.io.raster import GeoTiffWriter
    from otbtf_qgis.core.io.windows import Window

    path = tmp_path / "classes.tif"
    with GeoTiffWriter(path, 4, 4, 1, np.uint8, (0, 1, 0, 0, 0, -1)) as writer:
        writer.write(Window(0, 0, 4, 4), np.arange(16, dtype=np.uint8).reshape(4, 4) % 3)
        writer.set_color_table([(30, 90, 200), (235, 200, 60), (20, 110, 40)], ["water", "crop", "tree & co"])
    assert (tmp_path / "classes.qml").exists()
    layer = QgsRasterLayer(str(path), "classes")
    assert layer.isValid()
    message, loaded = layer.loadDefaultStyle()
    assert loaded, message
    renderer = layer.renderer()
    assert renderer.type() == "paletted"
    assert [(c.value, c.label, c.color.name()) for c in renderer.classes()] == [
        (0, "water", "#1e5ac8"), (1, "crop", "#ebc83c"), (2, "tree & co", "#146e28")]
