"""The shipped OTB + OTBTF graphical model (``resources/models/otb_bandmath_serve.model3``), headless.

``otb:BandMathX`` (QGIS's OTB provider on Debian's OTB) preprocesses the image and
``otbtf:modelserve`` serves a model on the result; the reference serves the same
preprocessing done with numpy.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from tests.core.conftest import make_raster
from tests.processing.conftest import ROOT, qgis_process, run_json

pytestmark = pytest.mark.otb

MODEL_FILE = ROOT / "resources" / "models" / "otb_bandmath_serve.model3"
GEOTRANSFORM = (345678.0, 1.5, 0.0, 5123456.0, 0.0, -1.5)
BUILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tests.core import saved_models as models
    models.unet_model(Path(sys.argv[1]))
""")


@pytest.fixture(scope="module")
def otb_otbtf_profile(dev_profile: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh profile with both the development plugin and QGIS's OTB provider enabled."""
    profile = tmp_path_factory.mktemp("otb-otbtf-profile")
    done = qgis_process(["plugins", "enable", "otbtf_qgis"], profile, ROOT / "build" / "plugins")
    assert done.returncode == 0, done.stderr
    done = subprocess.run(["/usr/bin/python3", str(ROOT / "scripts" / "configure_qgis_otb.py"), str(profile)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return profile


def test_the_model_chains_bandmathx_into_modelserve(qgis_app):
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL_FILE))
    children = model.childAlgorithms()
    assert {child.algorithmId() for child in children.values()} == {"otb:BandMathX", "otbtf:modelserve"}
    serve = children["serve"]
    assert [source.outputChildId() for source in serve.parameterSources()["SOURCES"]] == ["preprocess"]
    assert sorted(p.name() for p in model.parameterDefinitions() if not p.isDestination()) == [
        "efield", "expression", "image", "model", "output_names", "rfield"]


def test_the_model_runs_headless_and_gives_the_served_pixels(otb_otbtf_profile, run_in_process, tmp_path):
    rng = np.random.default_rng(8)
    data = rng.integers(0, 600, size=(70, 90, 4)).astype(np.uint16)
    image = make_raster(tmp_path / "image.tif", data, geotransform=GEOTRANSFORM)
    subprocess.run([sys.executable, "-c", BUILD, str(tmp_path / "model")], cwd=ROOT, check=True, capture_output=True)
    output, classes = tmp_path / "scores.tif", tmp_path / "classes.tif"

    result = run_json(["run", str(MODEL_FILE), "--", f"image={image}", "expression=im1 * 3",
                       f"model={tmp_path / 'model'}", f"serve:probabilities={output}", f"serve:classes={classes}"],
                      otb_otbtf_profile)

    assert Path(result["results"]["serve:probabilities"]) == output
    # the reference: the same preprocessing by numpy, served by otbtf:modelserve alone (in this process)
    tripled = make_raster(tmp_path / "tripled.tif", data.astype(np.float32) * 3, geotransform=GEOTRANSFORM)
    reference = tmp_path / "reference.tif"
    run_in_process("modelserve", SOURCES=[tripled], MODEL=tmp_path / "model", OUTPUT=reference)
    served, expected = gdal.Open(str(output)), gdal.Open(str(reference))
    # rf 32, ef 16: 90 - 32 + 16 = 74 -> 64 columns, 70 - 16 = 54 -> 48 rows, from input pixel 8
    assert (served.RasterXSize, served.RasterYSize, served.RasterCount) == (64, 48, 2)
    assert served.GetGeoTransform() == pytest.approx((345678.0 + 8 * 1.5, 1.5, 0.0, 5123456.0 - 8 * 1.5, 0.0, -1.5))
    assert served.GetGeoTransform() == expected.GetGeoTransform()
    assert served.GetSpatialRef().IsSame(expected.GetSpatialRef())
    np.testing.assert_array_equal(served.ReadAsArray(), expected.ReadAsArray())
    np.testing.assert_array_equal(gdal.Open(str(classes)).ReadAsArray(), np.argmax(expected.ReadAsArray(), axis=0))
