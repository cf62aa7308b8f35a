"""pyotb objects as inputs of serving and extraction, and serving results as pyotb inputs.

References are the same data written to files by OTB (``app.write``) and given as paths.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from osgeo import gdal

from otbtf_qgis.core.compat.otb import TensorflowModelServe
from otbtf_qgis.core.data.patchesextraction import PatchesExtractionConfig, patches_extraction
from otbtf_qgis.core.errors import InputError, ModelError
from otbtf_qgis.core.io.pyotb_inputs import ScratchRasters, as_pyotb_input, file_path, is_pyotb_image
from otbtf_qgis.core.progress import Reporter
from otbtf_qgis.core.serving import ServeConfig, SourceConfig, serve
from tests.core.conftest import make_raster
from tests.core.saved_models import predictions_model
from tests.processing.conftest import ROOT
from tests.vector_data import write_points

GEOTRANSFORM = (345678.0, 1.5, 0.0, 5123456.0, 0.0, -1.5)


class Messages(Reporter):
    """A reporter that keeps its messages."""

    def __init__(self) -> None:
        self.infos: list[str] = []

    def info(self, message: str) -> None:
        self.infos.append(message)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pyotb")
    data = np.random.default_rng(5).integers(0, 2000, size=(120, 130, 4)).astype(np.uint16)
    image = make_raster(folder / "image.tif", data, geotransform=GEOTRANSFORM)
    predictions_model(folder / "model")
    return {"image": image, "model": folder / "model", "data": data}


def serve_config(source: object, model: Path, output: Path) -> ServeConfig:
    return ServeConfig((SourceConfig((source,), (64,), "input_xs"),), str(model), str(output),
                       ("predictions_crop16",), (32,), tile_size=32)


@pytest.mark.otb
def test_pyotb_pipeline_is_served_as_its_file(pyotb: ModuleType, case, tmp_path):
    pipeline = pyotb.BandMathX({"il": [str(case["image"])], "exp": "im1 * 2"})
    written = tmp_path / "pipeline.tif"
    pipeline.write(str(written))  # the reference: the pipeline's pixels in a file, by OTB
    np.testing.assert_array_equal(gdal.Open(str(written)).ReadAsArray(),
                                  np.transpose(case["data"], (2, 0, 1)).astype(np.float32) * 2)
    fresh = pyotb.BandMathX({"il": [str(case["image"])], "exp": "im1 * 2"})
    out = tmp_path / "served" / "from_pyotb.tif"
    messages = Messages()
    summary = serve(serve_config(fresh, case["model"], out), messages)
    serve(serve_config(str(written), case["model"], tmp_path / "from_file.tif"))

    np.testing.assert_array_equal(gdal.Open(str(out)).ReadAsArray(),
                                  gdal.Open(str(tmp_path / "from_file.tif")).ReadAsArray())
    assert gdal.Open(str(out)).GetGeoTransform() == gdal.Open(str(tmp_path / "from_file.tif")).GetGeoTransform()
    assert (summary["width"], summary["height"]) == (96, 64)  # 130 - 64 + 32 = 98 -> 96, 120 -> 88 -> 64
    assert any("computing pyotb:BandMathX with OTB" in m for m in messages.infos)
    assert sorted(p.name for p in out.parent.iterdir()) == ["from_pyotb.tif"]  # the temporary file is gone
    assert "out" not in fresh.parameters  # the user's application was not given an output


@pytest.mark.otb
def test_outputs_inputs_and_frozen_applications(pyotb: ModuleType, case, tmp_path):
    import otbApplication

    messages = Messages()
    with ScratchRasters(tmp_path, messages) as scratch:
        # a pyotb.Input of a file is read in place: nothing is written
        assert scratch.path(pyotb.Input(str(case["image"]))) == str(case["image"])
        assert scratch.folder is None
        # an application's output object, twice: computed once
        app = pyotb.BandMath({"il": [str(case["image"])], "exp": "im1b2 - im1b1"})
        first = scratch.path(app["out"])
        assert scratch.path(app["out"]) == first and scratch.folder is not None
        assert sum("computing" in m for m in messages.infos) == 1
        np.testing.assert_array_equal(gdal.Open(first).ReadAsArray(),
                                      case["data"][:, :, 1].astype(np.float32) - case["data"][:, :, 0])
        # a frozen application (not run yet) is run first; its pixel type is kept
        frozen = pyotb.BandMath({"il": [str(case["image"])], "exp": "im1b3"}, frozen=True)
        frozen.app.SetParameterOutputImagePixelType("out", otbApplication.ImagePixelType_uint16)
        kept = gdal.Open(scratch.path(frozen))
        assert gdal.GetDataTypeName(kept.GetRasterBand(1).DataType) == "UInt16"
        np.testing.assert_array_equal(kept.ReadAsArray(), case["data"][:, :, 2])
        # an Input whose region was changed is no longer the whole file: written
        roi = pyotb.Input(str(case["image"]))
        roi.set_parameters({"startx": 3, "sizex": 20, "starty": 2, "sizey": 10})
        roi.execute()
        np.testing.assert_array_equal(np.transpose(gdal.Open(scratch.path(roi)).ReadAsArray(), (1, 2, 0)),
                                      case["data"][2:12, 3:23])
        folder = scratch.folder
    assert not folder.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.otb
def test_pyotb_source_of_patch_extraction_equals_its_file(pyotb: ModuleType, case, tmp_path):
    pipeline = pyotb.BandMathX({"il": [str(case["image"])], "exp": "im1 * 0.5"})
    pipeline.write(str(tmp_path / "half.tif"))
    rng = np.random.default_rng(2)
    xy = [(GEOTRANSFORM[0] + c * 1.5, GEOTRANSFORM[3] - r * 1.5)
          for c, r in zip(rng.uniform(0, 130, 40), rng.uniform(0, 120, 40), strict=True)]
    points = write_points(tmp_path / "points.gpkg", xy)
    fresh = pyotb.BandMathX({"il": [str(case["image"])], "exp": "im1 * 0.5"})
    from_pyotb = patches_extraction(PatchesExtractionConfig(sources=(fresh,), points=str(points),
                                                            output_dir=str(tmp_path / "a"), patch_sizes="16"))
    from_file = patches_extraction(PatchesExtractionConfig(sources=(str(tmp_path / "half.tif"),), points=str(points),
                                                           output_dir=str(tmp_path / "b"), patch_sizes="16"))
    assert from_pyotb["n_samples"] == from_file["n_samples"] > 10
    np.testing.assert_array_equal(gdal.Open(str(tmp_path / "a" / "xs_patches.tif")).ReadAsArray(),
                                  gdal.Open(str(tmp_path / "b" / "xs_patches.tif")).ReadAsArray())
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["sources"][0]["path"] == "pyotb:BandMathX"
    assert manifest["sources"][0]["dtype"] == "float32"
    assert not list(tmp_path.glob(".otbtf-pyotb-*"))


@pytest.mark.otb
def test_serving_result_feeds_pyotb(pyotb: ModuleType, case, tmp_path):
    result = serve(serve_config(str(case["image"]), case["model"], tmp_path / "scores.tif"))
    scores = np.transpose(gdal.Open(result["output"]).ReadAsArray(), (1, 2, 0))
    doubled = pyotb.BandMath({"il": [result["output"]], "exp": "im1b2 * 2"})
    np.testing.assert_allclose(doubled.to_numpy()[:, :, 0], scores[:, :, 1] * 2, rtol=1e-6)
    wrapped = as_pyotb_input(result["output"])
    np.testing.assert_array_equal(wrapped.to_numpy(), scores)
    assert wrapped.transform[0] == pytest.approx(1.5)
    # and a pyotb object chained after serving serves again
    again = serve(serve_config(pyotb.BandMathX({"il": [str(case["image"])], "exp": "im1"}), case["model"],
                               tmp_path / "again.tif"))
    np.testing.assert_array_equal(gdal.Open(again["output"]).ReadAsArray(), gdal.Open(result["output"]).ReadAsArray())


@pytest.mark.otb
def test_otbtf_dict_takes_pyotb_objects(pyotb: ModuleType, case, tmp_path):
    params = {"source1.rfieldx": 64, "source1.rfieldy": 64, "source1.placeholder": "input_xs",
              "model.dir": str(case["model"]), "model.fullyconv": True, "output.names": "predictions_crop16",
              "output.efieldx": 32, "output.efieldy": 32}
    pipeline = pyotb.BandMathX({"il": [str(case["image"])], "exp": "im1 * 3"})
    TensorflowModelServe({**params, "source1.il": [pipeline], "out": str(tmp_path / "pyotb.tif")})
    pipeline.write(str(tmp_path / "tripled.tif"))
    TensorflowModelServe({**params, "source1.il": str(tmp_path / "tripled.tif"), "out": str(tmp_path / "file.tif")})
    np.testing.assert_array_equal(gdal.Open(str(tmp_path / "pyotb.tif")).ReadAsArray(),
                                  gdal.Open(str(tmp_path / "file.tif")).ReadAsArray())


@pytest.mark.otb
def test_a_failed_call_leaves_no_temporary_file(pyotb: ModuleType, case, tmp_path):
    (tmp_path / "empty").mkdir()
    pipeline = pyotb.BandMathX({"il": [str(case["image"])], "exp": "im1"})
    with pytest.raises(ModelError):
        serve(serve_config(pipeline, tmp_path / "empty", tmp_path / "out" / "scores.tif"))
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(InputError, match="is a pyotb object: this function reads files"):
        file_path(pipeline)


def test_core_works_without_pyotb(tmp_path):
    # pyotb and OTB's Python API made unimportable: the core imports, serves paths, and says
    # how to get pyotb when a pyotb-like object is given.
    code = textwrap.dedent("""
        import sys
        sys.modules["pyotb"] = None
        sys.modules["otbApplication"] = None
        import numpy as np
        from pathlib import Path
        from otbtf_qgis.core.compat import otb as otbtf_compat
        from otbtf_qgis.core.data import patchesextraction as extraction
        from otbtf_qgis.core.io import pyotb_inputs as pyotb_io
        from otbtf_qgis.core.serving import modelserve as engine
        from otbtf_qgis.core.errors import DependencyError
        from tests.core.conftest import make_raster

        class App:
            def GetParameterOutputImagePixelType(self, key):
                return 5

        class LooksLikePyotb:
            app = App()
            output_image_key = "out"
            name = "BandMath"

        folder = Path(sys.argv[1])
        image = make_raster(folder / "a.tif", np.ones((5, 6, 1), np.float32))
        fake = LooksLikePyotb()
        assert pyotb_io.is_pyotb_image(fake) and not pyotb_io.is_pyotb_image(str(image))
        with pyotb_io.ScratchRasters(folder) as scratch:
            assert scratch.path(image) == str(image)
            try:
                scratch.path(fake)
            except DependencyError as exc:
                print(exc)
        try:
            pyotb_io.as_pyotb_input(image)
        except DependencyError as exc:
            print(exc)
        print(sorted(p.name for p in folder.iterdir()))
    """)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("SOURCES: OTB's Python API (otbApplication) cannot be imported: install OTB's Python "
                               "API and pyotb with `make setup-otb`")
    assert lines[1].startswith("PYOTB: pyotb cannot be imported") and "make setup-otb" in lines[1]
    assert lines[2] == "['a.tif']"


def test_only_paths_and_pyotb_objects_are_rasters(tmp_path):
    with ScratchRasters(tmp_path) as scratch:
        with pytest.raises(InputError, match="42 is not a raster: give a file path or a pyotb object") as error:
            scratch.path(42, "source1.il")
        assert error.value.parameter == "source1.il"
        assert scratch.path(tmp_path / "a.tif") == str(tmp_path / "a.tif")
    assert not is_pyotb_image(tmp_path) and not is_pyotb_image(object())
    with pytest.raises(InputError, match="42 is not a raster"):
        serve(serve_config(42, tmp_path, tmp_path / "out.tif"))
