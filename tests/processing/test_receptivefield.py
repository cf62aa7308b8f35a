"""otbtf:receptivefield through the real qgis_process, on a model trained by otbtf:trainmodel."""

from __future__ import annotations

from pathlib import Path


def test_receptivefield_recommends_crop16_for_64(trained_model: tuple[Path, dict], run_alg, tmp_path: Path):
    output, _ = trained_model
    report = tmp_path / "report.html"
    result = run_alg("receptivefield", MODEL=str(output), INPUT_SIZE=64, OUTPUT_HTML=str(report))["results"]
    assert (result["OUTPUT_NAME"], result["RFIELD"], result["EFIELD"]) == ("predictions_softmax_tensor_crop16", 64, 32)
    assert "| tconv3 | Conv2DTranspose | 3 | 2 | 32 | 17 |" in result["TABLE"]
    assert "| predictions_softmax_tensor | Conv2DTranspose | 3 | 2 | 64 | 33 |" in result["TABLE"]
    assert "<td>predictions_softmax_tensor_crop16</td>" in report.read_text()
