"""The main job on the real Landsat scene: the demo chain and the shipped graphical model."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from .conftest import ROOT, run_json

gdal.UseExceptions()
DEMO = ROOT / "demo" / "run_demo.py"
CLASSES = ["crop", "developed", "tree", "water"]


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


def test_demo_chain_on_a_crop_of_the_scene(demo_data: Path, dev_profile: Path, tmp_path: Path):
    output = tmp_path / "demo"
    env = {**os.environ, "OTBTF_QGIS_PROFILE": str(dev_profile), "OTBTF_QGIS_PYTHON": sys.executable}
    done = subprocess.run([sys.executable, str(DEMO), "--crop", "40", "--epochs", "2", "--step", "4",
                           "--output", str(output), "--data", str(demo_data)], capture_output=True, text=True,
                          env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("classes.tif", "probabilities.tif", "scene_truecolor.png", "classes.png", "training_curves.png",
                 "report.md", "model/saved_model.pb", "model/otbtf_model.json", "model/history.json"):
        assert (output / name).exists(), name
    scene = output / "work" / "scene_crop.tif"
    check_class_map(output / "classes.tif", scene)
    probabilities = gdal.Open(str(output / "probabilities.tif")).ReadAsArray()
    assert probabilities.shape[0] == 4
    classes = gdal.Open(str(output / "classes.tif")).ReadAsArray()
    valid = classes != 255
    assert valid.any()
    np.testing.assert_allclose(probabilities.sum(axis=0)[valid], 1.0, atol=1e-4)
    np.testing.assert_array_equal(classes[valid], probabilities.argmax(axis=0)[valid])
    assert (probabilities[:, ~valid] == 0).all()  # BACKGROUND where the scene is nodata
    history = json.loads((output / "model" / "history.json").read_text())
    assert len(history["loss"]) == 2
    report = (output / "report.md").read_text()
    assert "## Timings" in report and "Train the FCNN (2 epochs, CPU)" in report
    assert "[5/6] Serve the model over the whole scene" in done.stdout
    assert str(output.name) in done.stdout


def _crop(demo_data: Path, target: Path) -> Path:
    spec = importlib.util.spec_from_file_location("run_demo", DEMO)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.crop_scene(demo_data / "scene.tif", demo_data / "polygons.gpkg", target, 40)  # type: ignore


def test_the_workflow_model_runs_headless(demo_data: Path, dev_profile: Path, tmp_path: Path):
    scene = _crop(demo_data, tmp_path / "scene.tif")
    model = ROOT / "resources" / "models" / "otbtf_workflow.model3"
    result = run_json(["run", str(model), "--", f"image={scene}", f"polygons={demo_data / 'polygons.gpkg'}",
                       "class_field=name", "patch_size=64", "step=6", "epochs=1",
                       f"train_fcnn:model={tmp_path / 'model'}", f"serve:classes={tmp_path / 'classes.tif'}",
                       f"serve:probabilities={tmp_path / 'probabilities.tif'}"], dev_profile, timeout=900)
    assert result["results"]["serve:classes"] == str(tmp_path / "classes.tif")
    check_class_map(tmp_path / "classes.tif", scene, nodata=None)
    assert (tmp_path / "model" / "saved_model.pb").exists()


@pytest.mark.slow
def test_full_demo(demo_data: Path, dev_profile: Path, tmp_path: Path):
    """What ``make demo`` runs: the whole scene, default epochs; water is found where the water polygon is."""
    output = tmp_path / "demo"
    env = {**os.environ, "OTBTF_QGIS_PROFILE": str(dev_profile), "OTBTF_QGIS_PYTHON": sys.executable}
    done = subprocess.run([sys.executable, str(DEMO), "--output", str(output), "--data", str(demo_data)],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_class_map(output / "classes.tif", demo_data / "scene.tif")
    # The water polygon's pixels are mapped as water.
    from osgeo import ogr

    source = ogr.Open(str(demo_data / "polygons.gpkg"))
    layer = source.GetLayer(0)
    layer.SetAttributeFilter("name = 'water'")
    feature = layer.GetNextFeature()  # keep the feature alive while its geometry is used
    water = feature.GetGeometryRef().Centroid()
    dataset = gdal.Open(str(output / "classes.tif"))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    col, row = int((water.GetX() - x0) / dx), int((water.GetY() - y0) / dy)
    assert dataset.GetRasterBand(1).ReadAsArray(col - 1, row - 1, 3, 3).max() == 3
    # The scene's zero border (top right) is nodata.
    assert dataset.GetRasterBand(1).ReadAsArray(dataset.RasterXSize - 8, 0, 8, 8).min() == 255
