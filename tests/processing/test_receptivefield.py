"""``otbtf:receptivefield``: its parameters → job config (in process), and a real run through qgis_process on a
model trained by otbtf:trainmodel."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsProcessingContext, QgsProcessingException

from otbtf_qgis.core.jobs.configs.receptivefield import ReceptiveFieldConfig
from tests.processing.conftest import algorithm, build_config


def test_config(qgis_app, tmp_path: Path):
    assert build_config("receptivefield", MODEL=tmp_path / "model") == ReceptiveFieldConfig(
        model=str(tmp_path / "model"), input_size=64)
    assert build_config("receptivefield", MODEL=tmp_path / "model") == ReceptiveFieldConfig(str(tmp_path / "model"))
    assert build_config("receptivefield", MODEL=tmp_path / "model", INPUT_SIZE=128,
                        OUTPUT_HTML=tmp_path / "report.html") == ReceptiveFieldConfig(str(tmp_path / "model"), 128)


def test_config_bad_values(qgis_app, tmp_path: Path):
    with pytest.raises(QgsProcessingException, match=r"^MODEL: give the SavedModel folder"):
        build_config("receptivefield", INPUT_SIZE=64)
    ok, message = algorithm("receptivefield").checkParameterValues({"MODEL": str(tmp_path), "INPUT_SIZE": 0},
                                                                   QgsProcessingContext())
    assert not ok and "INPUT_SIZE" in message


def test_receptivefield_recommends_crop16_for_64(trained_model: tuple[Path, dict], run_alg, tmp_path: Path):
    output, _ = trained_model
    report = tmp_path / "report.html"
    result = run_alg("receptivefield", MODEL=str(output), INPUT_SIZE=64, OUTPUT_HTML=str(report))["results"]
    assert (result["OUTPUT_NAME"], result["RFIELD"], result["EFIELD"]) == ("predictions_softmax_tensor_crop16", 64, 32)
    assert "| tconv3 | Conv2DTranspose | 3 | 2 | 32 | 17 |" in result["TABLE"]
    assert "| predictions_softmax_tensor | Conv2DTranspose | 3 | 2 | 64 | 33 |" in result["TABLE"]
    assert "<td>predictions_softmax_tensor_crop16</td>" in report.read_text()
