"""``otbtf:modelserve`` through the real qgis_process, on a synthetic raster and a small Keras model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsApplication, QgsRasterLayer

from otbtf_qgis.processing.provider import OtbtfProvider

from .conftest import ROOT, qgis_process

# TensorFlow must not be imported in this (QGIS) process: the model and the reference
# prediction are made by a separate Python.
BUILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from tests.core.serving import models
    folder = Path(sys.argv[1])
    model = models.valid_model(folder / "model")
    data = np.load(folder / "image.npy")
    scores = np.asarray(model({"input_xs": data[None]})["scores"])[0]
    np.save(folder / "expected.npy", scores)
""")


@pytest.fixture(scope="module")
def served_case(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("modelserve")
    data = np.random.default_rng(11).normal(size=(45, 70, 3)).astype(np.float32)
    np.save(folder / "image.npy", data)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    dataset = gdal.GetDriverByName("GTiff").Create(str(folder / "image.tif"), 70, 45, 3, gdal.GDT_Float32)
    dataset.SetGeoTransform((300000.0, 5.0, 0.0, 5000000.0, 0.0, -5.0))
    dataset.SetProjection(srs.ExportToWkt())
    for band in range(3):
        dataset.GetRasterBand(band + 1).WriteArray(data[:, :, band])
    dataset = None
    subprocess.run([sys.executable, "-c", BUILD, str(folder)], cwd=ROOT, check=True, capture_output=True)
    return folder


def test_modelserve_is_listed_with_its_parameters(qgis_app):
    provider = OtbtfProvider()
    assert QgsApplication.processingRegistry().addProvider(provider)
    try:
        algorithm = QgsApplication.processingRegistry().algorithmById("otbtf:modelserve")
        names = [p.name() for p in algorithm.parameterDefinitions()]
        assert names == ["SOURCES", "MODEL", "RFIELDS", "OUTPUT_NAMES", "EFIELD", "OUTPUT", "OUTPUT_CLASSES",
                         "PLACEHOLDERS", "FULLYCONV", "SPCSCALE", "TILE_SIZE", "NODATA", "BACKGROUND",
                         "USER_PLACEHOLDERS", "OUTPUT_TYPE", "CREATION_OPTIONS", "COG"]
        assert sorted(o.name() for o in algorithm.outputDefinitions()) == ["OUTPUT", "OUTPUT_CLASSES"]
        assert algorithm.groupId() == "inference"
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)


def test_modelserve_with_defaults_from_the_model(run_alg, served_case, tmp_path, qgis_app):
    output = tmp_path / "scores.tif"
    classes = tmp_path / "classes.tif"
    result = run_alg("modelserve", SOURCES=str(served_case / "image.tif"), MODEL=str(served_case / "model"),
                     TILE_SIZE=16, OUTPUT=str(output), OUTPUT_CLASSES=str(classes))
    assert result["results"]["OUTPUT"] == str(output)
    dataset = gdal.Open(str(output))
    # rf 14, ef 8: 70 - 14 + 8 = 64 columns, 45 - 14 + 8 = 39 -> 32 rows, from input pixel 3
    assert (dataset.RasterXSize, dataset.RasterYSize, dataset.RasterCount) == (64, 32, 3)
    assert dataset.GetGeoTransform() == (300015.0, 5.0, 0.0, 4999985.0, 0.0, -5.0)
    srs = osr.SpatialReference(dataset.GetProjection())
    assert srs.GetAuthorityCode(None) == "32631"
    expected = np.load(served_case / "expected.npy")[:32, :64]
    np.testing.assert_allclose(dataset.ReadAsArray(interleave="pixel"), expected, atol=1e-6)
    # the class map loads paletted, with the model's class names
    layer = QgsRasterLayer(str(classes), "classes")
    assert layer.isValid() and layer.renderer().type() == "paletted"
    assert [c.label for c in layer.renderer().classes()][:3] == ["water", "crop", "tree"]
    np.testing.assert_array_equal(gdal.Open(str(classes)).ReadAsArray(), np.argmax(expected, axis=2))


def test_modelserve_bad_model_fails_clearly_without_output(dev_profile, served_case, tmp_path):
    (tmp_path / "not_a_model").mkdir()
    output = tmp_path / "out.tif"
    done = qgis_process(["run", "otbtf:modelserve", "--", f"SOURCES={served_case / 'image.tif'}",
                         f"MODEL={tmp_path / 'not_a_model'}", f"OUTPUT={output}"], dev_profile)
    assert done.returncode != 0
    assert "MODEL: " in done.stdout + done.stderr and "is not a SavedModel" in done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_model"]
    done = qgis_process(["run", "otbtf:modelserve", "--", f"SOURCES={served_case / 'image.tif'}",
                         f"MODEL={served_case / 'model'}", "RFIELDS=14;14", f"OUTPUT={output}"], dev_profile)
    assert done.returncode != 0 and "RFIELDS: 2 value(s) for 1 source(s)" in done.stdout + done.stderr
    assert not output.exists()
