"""The main job on the real Landsat scene: the demo chain and the shipped graphical model."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from tests.processing.conftest import ROOT, run_json

gdal.UseExceptions()
DEMO = ROOT / "demo" / "run_demo.py"
LABELS = ROOT / "demo" / "labels.gpkg"
CLASSES = ["crop", "developed", "tree", "water"]
#: The fast variant's window of the scene (column, row, width, height): at least 5 polygons of each class.
WINDOW_TUPLE = (400, 800, 700, 700)
WINDOW = ",".join(map(str, WINDOW_TUPLE))


@pytest.fixture(scope="session")
def demo_data() -> Path:
    """The scene and the polygons, fetched once (and cached under data/)."""
    target = ROOT / "data" / "demo"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_demo_data.py"), "--target", str(target),
                    "--cache", str(target.parent)], check=True, capture_output=True)
    return target


def output_grid(scene: Path, receptive: int = 64, expression: int = 32) -> tuple[int, int, tuple[float, ...]]:
    """The serving grid of OTBTF's rule, computed here independently of the engine."""
    dataset = gdal.Open(str(scene))
    width = ((dataset.RasterXSize - receptive) // expression + 1) * expression
    height = ((dataset.RasterYSize - receptive) // expression + 1) * expression
    x0, dx, rx, y0, ry, dy = dataset.GetGeoTransform()
    margin = (receptive - expression) // 2
    return width, height, (x0 + margin * dx, dx, rx, y0 + margin * dy, ry, dy)


def check_class_map(classes: Path, scene: Path, nodata: int | None = 255) -> None:
    """The class map's grid, CRS, classes and colours; ``nodata``: the demo's (its scene has NODATA=0)."""
    width, height, geotransform = output_grid(scene)
    dataset = gdal.Open(str(classes))
    assert (dataset.RasterXSize, dataset.RasterYSize) == (width, height)
    assert dataset.GetGeoTransform() == pytest.approx(geotransform)
    srs = osr.SpatialReference(wkt=dataset.GetProjection())
    assert srs.GetAuthorityCode(None) == "32621"
    band = dataset.GetRasterBand(1)
    assert band.GetRasterCategoryNames()[:4] == CLASSES
    assert band.GetRasterColorTable().GetColorEntry(3)[:3] == (30, 90, 200)  # water is blue
    assert band.GetNoDataValue() == nodata
    values = band.ReadAsArray()
    assert values[values != nodata].max() <= 3


def load_demo() -> Any:
    """The demo script as a module (it is not a package module)."""
    spec = importlib.util.spec_from_file_location("run_demo", DEMO)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.reader(stream))


def test_demo_chain_on_a_window_of_the_scene(demo_data: Path, dev_profile: Path, tmp_path: Path):
    output = tmp_path / "demo"
    env = {**os.environ, "OTBTF_QGIS_PROFILE": str(dev_profile), "OTBTF_QGIS_PYTHON": sys.executable}
    done = subprocess.run([sys.executable, str(DEMO), "--window", WINDOW, "--epochs", "2", "--step", "4",
                           "--output", str(output), "--data", str(demo_data)], capture_output=True, text=True,
                          env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("classes.tif", "probabilities.tif", "scene_truecolor.png", "classes.png", "zooms.png",
                 "training_curves.png", "report.md", "accuracy.html", "confusion_matrix.csv", "class_accuracy.csv",
                 "polygons_split.gpkg", "model/saved_model.pb", "model/otbtf_model.json", "model/history.json"):
        assert (output / name).exists(), name
    scene = output / "work" / "scene_window.tif"
    assert gdal.Open(str(scene)).RasterXSize == WINDOW_TUPLE[2]
    check_class_map(output / "classes.tif", scene)
    probabilities = gdal.Open(str(output / "probabilities.tif")).ReadAsArray()
    assert probabilities.shape[0] == 4
    classes = gdal.Open(str(output / "classes.tif")).ReadAsArray()
    valid = classes != 255
    assert valid.any()
    np.testing.assert_allclose(probabilities.sum(axis=0)[valid], 1.0, atol=1e-4)
    np.testing.assert_array_equal(classes[valid], probabilities.argmax(axis=0)[valid])
    history = json.loads((output / "model" / "history.json").read_text())
    assert len(history["loss"]) == 2 and history["exported_epoch"] in (1, 2)
    # whole polygons: every class has polygons in each set
    sets = load_demo().polygons_per_set(output / "polygons_split.gpkg")
    assert sorted(sets) == CLASSES
    assert all(min(n.get(s, 0) for s in ("train", "valid", "test")) >= 1 for n in sets.values())
    # the report's matrix is the assessment's, over the test polygons' pixels
    matrix = read_csv(output / "confusion_matrix.csv")
    assert matrix[0] == ["map \\ reference", *CLASSES, "total"]
    table = read_csv(output / "class_accuracy.csv")
    assert int(matrix[-1][-1]) == sum(int(row[table[0].index("reference_pixels")]) for row in table[1:]) > 0
    report = (output / "report.md").read_text()
    assert "## Accuracy on the test polygons" in report and "| " + " | ".join(matrix[-1]) + " |" in report
    correct = sum(int(matrix[k + 1][k + 1]) for k in range(len(CLASSES)))
    assert f"Overall accuracy: **{100 * correct / int(matrix[-1][-1]):.1f} %**" in report
    assert "## Timings" in report and "Train the FCNN (2 epochs, CPU; the best validation epoch is kept)" in report
    assert "[6/7] Assess the map on the test polygons" in done.stdout
    assert "Overall accuracy on the test polygons:" in done.stdout


def test_the_demo_zooms_fit_the_scene_or_fall_back_to_all_of_it(demo_data: Path, tmp_path: Path):
    demo = load_demo()
    scene = demo_data / "scene.tif"
    assert demo.zoom_windows(scene, (0, 0)) == dict(demo.ZOOMS)
    window, _ = demo.cut_window(scene, demo.LABELS, (400, 800, 300, 200), tmp_path)
    assert demo.zoom_windows(window, (400, 800)) == {"Whole scene": (0, 0, 200)}
    row, col, size = demo.ZOOMS["City (Ciudad del Este)"]
    window, labels = demo.cut_window(scene, demo.LABELS, (col - 10, row - 20, size + 30, size + 40), tmp_path)
    assert demo.zoom_windows(window, (col - 10, row - 20)) == {"City (Ciudad del Este)": (20, 10, size)}
    source = ogr.Open(str(labels))  # the labels are cut to the window too
    xmin, xmax, ymin, ymax = source.GetLayer(0).GetExtent()
    x0, dx, _, y0, _, dy = gdal.Open(str(window)).GetGeoTransform()
    assert x0 <= xmin and xmax <= x0 + (size + 30) * dx and y0 + (size + 40) * dy <= ymin and ymax <= y0
    with pytest.raises(SystemExit, match="is not inside the scene"):
        demo.cut_window(scene, demo.LABELS, (2000, 0, 100, 100), tmp_path)


def readme_workflow_command() -> list[str]:
    """The arguments of the README's command for the workflow model, as written there."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("scripts/qgis_process run resources/models/otbtf_workflow.model3")
    command = text[start:text.index("```", start)].replace("\\\n", " ")
    return shlex.split(command)[1:]


def check_workflow_outputs(out: Path, scene: Path, result: dict[str, Any]) -> None:
    """The model's outputs: the class map on the serving grid, the model, and the assessment on the test polygons."""
    assert result["results"]["serve:classes"] == str(out / "classes.tif")
    check_class_map(out / "classes.tif", scene, nodata=None)
    assert (out / "model" / "saved_model.pb").exists()
    training = json.loads((out / "model" / "otbtf_model.json").read_text())["training"]
    assert training["patch_size"] == [32, 32] and training["batch_size"] == 16
    matrix = read_csv(out / "matrix.csv")
    assert matrix[0] == ["map \\ reference", *CLASSES, "total"] and int(matrix[-1][-1]) > 0
    assert "Overall accuracy" in (out / "accuracy.html").read_text()


def test_the_workflow_model_runs_with_only_its_required_inputs(demo_data: Path, dev_profile: Path, tmp_path: Path):
    """The optional inputs (patch size, step, class cap) take their defaults; epochs=1 only to keep it short."""
    scene, labels = load_demo().cut_window(demo_data / "scene.tif", LABELS, WINDOW_TUPLE, tmp_path)
    model = ROOT / "resources" / "models" / "otbtf_workflow.model3"
    result = run_json(["run", str(model), "--", f"image={scene}", f"polygons={labels}", "class_field=name",
                       "epochs=1", f"train_fcnn:model={tmp_path / 'model'}",
                       f"serve:classes={tmp_path / 'classes.tif'}",
                       f"serve:probabilities={tmp_path / 'probabilities.tif'}",
                       f"assess:matrix={tmp_path / 'matrix.csv'}", f"assess:report={tmp_path / 'accuracy.html'}"],
                      dev_profile, timeout=900)
    check_workflow_outputs(tmp_path, scene, result)
    history = json.loads((tmp_path / "model" / "history.json").read_text())
    assert len(history["loss"]) == 1


@pytest.mark.slow
def test_the_readme_command_for_the_workflow_model(demo_data: Path, dev_profile: Path, tmp_path: Path):
    """The README's command as written, from a folder where data/demo is the demo's data."""
    args = readme_workflow_command()
    assert args[:2] == ["run", "resources/models/otbtf_workflow.model3"] and not any(
        a.startswith(("epochs=", "step=", "patch_size=")) for a in args)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demo").symlink_to(demo_data)
    (tmp_path / "demo").symlink_to(ROOT / "demo")
    (tmp_path / "resources").symlink_to(ROOT / "resources")
    result = run_json(args, dev_profile, timeout=1800, cwd=tmp_path)
    out = tmp_path / "out"
    result["results"] = {key: str(tmp_path / value) if not Path(value).is_absolute() else value
                         for key, value in result["results"].items()}
    check_workflow_outputs(out, demo_data / "scene.tif", result)
    table = read_csv(out / "matrix.csv")
    correct = sum(int(table[k + 1][k + 1]) for k in range(len(CLASSES)))
    assert correct / int(table[-1][-1]) >= 0.85


@pytest.mark.slow
def test_full_demo(demo_data: Path, dev_profile: Path, tmp_path: Path):
    """What ``make demo`` runs: the whole scene, on the test polygons OA ≥ 0.85 and every class F1 ≥ 0.75."""
    output = tmp_path / "demo"
    env = {**os.environ, "OTBTF_QGIS_PROFILE": str(dev_profile), "OTBTF_QGIS_PYTHON": sys.executable}
    done = subprocess.run([sys.executable, str(DEMO), "--output", str(output), "--data", str(demo_data)],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_class_map(output / "classes.tif", demo_data / "scene.tif")
    matrix = read_csv(output / "confusion_matrix.csv")
    correct = sum(int(matrix[k + 1][k + 1]) for k in range(len(CLASSES)))
    assert correct / int(matrix[-1][-1]) >= 0.85
    table = read_csv(output / "class_accuracy.csv")
    f1 = {row[0]: float(row[table[0].index("f1")]) for row in table[1:]}
    assert sorted(f1) == CLASSES and min(f1.values()) >= 0.75, f1
    dataset = gdal.Open(str(output / "classes.tif"))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    scene = gdal.Open(str(demo_data / "scene.tif")).GetGeoTransform()
    # the open reservoir (scene pixel 1300, 600) is water, the dense city (600, 1600) developed
    for (col, row), value in (((1300, 600), 3), ((600, 1600), 1)):
        x, y = scene[0] + (col + 0.5) * scene[1], scene[3] + (row + 0.5) * scene[5]
        assert dataset.GetRasterBand(1).ReadAsArray(int((x - x0) / dx) - 2, int((y - y0) / dy) - 2, 5, 5).min() \
            == value
    # The scene's zero border (top right) is nodata.
    assert dataset.GetRasterBand(1).ReadAsArray(dataset.RasterXSize - 8, 0, 8, 8).min() == 255
