"""QGIS's own OTB provider (``otb:*``) on Debian's OTB, headless through the real qgis_process.

``make setup-otb`` enables it in the development profile with scripts/configure_qgis_otb.py;
here the same script configures a fresh profile.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from tests.processing.conftest import ROOT, qgis_process, run_json

pytestmark = pytest.mark.otb

GEOTRANSFORM = (345678.5, 20.0, 0.0, 5123456.0, 0.0, -30.0)


@pytest.fixture(scope="module")
def otb_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    profile = tmp_path_factory.mktemp("otb-profile")
    done = subprocess.run(["/usr/bin/python3", str(ROOT / "scripts" / "configure_qgis_otb.py"), str(profile)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return profile


def test_otb_algorithms_are_listed(otb_profile: Path):
    done = qgis_process(["list"], otb_profile)
    assert done.returncode == 0, done.stderr
    listed = {line.split("\t")[1] for line in done.stdout.splitlines() if line.startswith("\totb:")}
    assert {"otb:BandMath", "otb:Superimpose", "otb:ExtractROI"} <= listed


def test_otb_bandmath_runs_headless(otb_profile: Path, tmp_path: Path):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    values = np.arange(6 * 9, dtype="uint16").reshape(6, 9)
    source = tmp_path / "in.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(source), 9, 6, 1, gdal.GDT_UInt16)
    dataset.SetGeoTransform(GEOTRANSFORM)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.GetRasterBand(1).WriteArray(values)
    dataset = None
    out = tmp_path / "out.tif"

    # outputpixeltype 5 is "float" in the provider's enumeration.
    result = run_json(["run", "otb:BandMath", "--", f"il={source}", "exp=im1b1*2+1", f"out={out}",
                       "outputpixeltype=5"], otb_profile)

    assert Path(result["results"]["out"]) == out
    written = gdal.Open(str(out))
    assert gdal.GetDataTypeName(written.GetRasterBand(1).DataType) == "Float32"
    np.testing.assert_array_equal(written.ReadAsArray(), values.astype("float32") * 2 + 1)
    assert written.GetGeoTransform() == pytest.approx(GEOTRANSFORM)
    assert written.GetSpatialRef().IsSame(srs)
