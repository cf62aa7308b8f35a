"""``otbtf:accuracyassessment``: its parameters → config in QGIS, and one run through the real qgis_process."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

from otbtf_qgis.core.jobs.configs.accuracyassessment import AccuracyAssessmentConfig
from otbtf_qgis.processing.accuracyassessment import AccuracyAssessmentAlgorithm
from tests.vector_data import rectangle, write_layer

X0, Y0, SPACING = 500000.0, 4500000.0, 10.0


def make_class_map(path: Path) -> Path:
    """20 x 24 pixels of 10 m: water (0) in columns 0-7, crop (1) in 8-15, forest (2) in 16-23, nodata 255."""
    array = np.zeros((20, 24), np.uint8)
    array[:, 8:16] = 1
    array[:, 16:] = 2
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), 24, 20, 1, gdal.GDT_Byte)
    dataset.SetGeoTransform((X0, SPACING, 0.0, Y0, 0.0, -SPACING))
    dataset.SetProjection(srs.ExportToWkt())
    band = dataset.GetRasterBand(1)
    band.SetNoDataValue(255)
    band.WriteArray(array)
    band.SetRasterCategoryNames(["water", "crop", "forest"])
    dataset = None
    return path


def box(u0: float, v0: float, u1: float, v1: float) -> str:
    return rectangle(X0 + u0 * SPACING, Y0 - v1 * SPACING, X0 + u1 * SPACING, Y0 - v0 * SPACING)


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    # water: columns 2-5 x rows 2-4 (12 water pixels); crop: columns 6-9 x rows 10-11 (4 water, 4 crop);
    # forest: columns 18-20 x rows 5-6 (6 forest); a train polygon that SPLIT_FIELD leaves out.
    polygons = write_layer(tmp_path / "reference.gpkg", [box(2, 2, 6, 5), box(6, 10, 10, 12), box(18, 5, 21, 7),
                                                         box(12, 0, 16, 4)],
                           fields={"landcover": ["water", "crop", "Forest", "water"],
                                   "split": ["test", "test", "test", "train"]})
    return {"map": make_class_map(tmp_path / "map.tif"), "polygons": polygons}


@pytest.fixture
def algorithm(qgis_app) -> AccuracyAssessmentAlgorithm:
    alg = AccuracyAssessmentAlgorithm()
    alg.initAlgorithm()
    return alg


def test_parameters_become_the_config(algorithm, inputs, tmp_path: Path):
    parameters = {"INPUT": str(inputs["map"]), "REFERENCE": str(inputs["polygons"]), "CLASS_FIELD": "landcover",
                  "SPLIT_FIELD": "split", "SPLIT_VALUE": "valid", "NODATA": 0, "CLASS_NAMES": "eau; culture,\nforet",
                  "OUTPUT_MATRIX": str(tmp_path / "m.csv"), "OUTPUT_REPORT": str(tmp_path / "r.html"),
                  "OUTPUT_CLASS_TABLE": str(tmp_path / "t.csv")}
    config = algorithm.build_config(parameters, QgsProcessingContext(), QgsProcessingFeedback())
    assert config == AccuracyAssessmentConfig(
        input=str(inputs["map"]), output_matrix=str(tmp_path / "m.csv"), reference=str(inputs["polygons"]),
        class_field="landcover", reference_raster="", split_field="split", split_value="valid", nodata=0.0,
        class_names=("eau", "culture", "foret"), output_report=str(tmp_path / "r.html"),
        output_class_table=str(tmp_path / "t.csv"))


def test_a_reference_raster_and_the_defaults(algorithm, inputs, tmp_path: Path):
    parameters = {"INPUT": str(inputs["map"]), "REFERENCE_RASTER": str(inputs["map"]),
                  "OUTPUT_MATRIX": str(tmp_path / "m.csv")}
    config = algorithm.build_config(parameters, QgsProcessingContext(), QgsProcessingFeedback())
    assert (config.reference, config.reference_raster, config.class_field) == ("", str(inputs["map"]), "")
    assert (config.split_field, config.split_value, config.nodata, config.class_names) == ("", "test", None, ())
    assert (config.output_report, config.output_class_table) == ("", "")


def test_bad_parameters_are_processing_errors_naming_the_parameter(algorithm, inputs, tmp_path: Path):
    context = QgsProcessingContext()
    with pytest.raises(QgsProcessingException, match=r"^REFERENCE: neither REFERENCE nor REFERENCE_RASTER given"):
        algorithm.build_config({"INPUT": str(inputs["map"]), "OUTPUT_MATRIX": str(tmp_path / "m.csv")}, context,
                               None)
    with pytest.raises(QgsProcessingException, match=r"^REFERENCE_RASTER: '.*missing\.tif' is not a raster"):
        algorithm.build_config({"INPUT": str(inputs["map"]), "REFERENCE_RASTER": str(tmp_path / "missing.tif"),
                                "OUTPUT_MATRIX": str(tmp_path / "m.csv")}, context, QgsProcessingFeedback())
    with pytest.raises(QgsProcessingException, match=r"^INPUT: '.*nomap\.tif' is not a raster QGIS can open"):
        algorithm.build_config({"INPUT": str(tmp_path / "nomap.tif"), "REFERENCE": str(inputs["polygons"]),
                                "CLASS_FIELD": "name", "OUTPUT_MATRIX": str(tmp_path / "m.csv")}, context,
                               QgsProcessingFeedback())
    with pytest.raises(QgsProcessingException, match=r"^CLASS_FIELD: no class field given for REFERENCE"):
        algorithm.build_config({"INPUT": str(inputs["map"]), "REFERENCE": str(inputs["polygons"]),
                                "OUTPUT_MATRIX": str(tmp_path / "m.csv")}, context, None)


def test_declared_in_the_validation_group_with_outputs_for_the_modeler(algorithm):
    assert (algorithm.group(), algorithm.groupId(), algorithm.name()) == ("Validation", "validation",
                                                                           "accuracyassessment")
    outputs = {o.name(): o.type() for o in algorithm.outputDefinitions()}
    assert outputs == {"OUTPUT_MATRIX": "outputFile", "OUTPUT_REPORT": "outputHtml", "OUTPUT_CLASS_TABLE": "outputFile",
                       "OVERALL_ACCURACY": "outputNumber", "OVERALL_ACCURACY_LOW": "outputNumber",
                       "OVERALL_ACCURACY_HIGH": "outputNumber", "KAPPA": "outputNumber", "MEAN_F1": "outputNumber",
                       "MIN_F1": "outputNumber", "CLASS_METRICS": "outputString"}
    assert not algorithm.icon().isNull()


def test_accuracy_assessment_through_qgis_process(run_alg, inputs, tmp_path: Path):
    result = run_alg("accuracyassessment", INPUT=inputs["map"], REFERENCE=inputs["polygons"], CLASS_FIELD="landcover",
                     SPLIT_FIELD="split", OUTPUT_MATRIX=tmp_path / "matrix.csv", OUTPUT_REPORT=tmp_path / "report.html",
                     OUTPUT_CLASS_TABLE=tmp_path / "classes.csv")["results"]
    # matrix (rows map): water [12, 4, 0], crop [0, 4, 0], forest [0, 0, 6]; OA = 22/26 over 3 polygons
    # (c, t) = (12, 12), (4, 8), (6, 6): c − OA·t = 24/13, −36/13, 12/13 → Σ² = 2016/169; SE² = 3/2 · 2016/169 / 26²
    se = math.sqrt(1.5 * 2016 / 169 / 26 ** 2)
    assert result["OVERALL_ACCURACY"] == pytest.approx(22 / 26)
    assert result["OVERALL_ACCURACY_LOW"] == pytest.approx(22 / 26 - 1.96 * se)
    assert result["OVERALL_ACCURACY_HIGH"] == pytest.approx(1.0)  # 22/26 + 0.34 is clipped
    # p_e = (16·12 + 4·8 + 6·6) / 26² = 260/676; κ = (22/26 − 260/676) / (1 − 260/676)
    assert result["KAPPA"] == pytest.approx((22 / 26 - 260 / 676) / (1 - 260 / 676))
    # F1 = 2 n_ii / (n_i· + n_·i): 24/28, 8/12, 12/12
    assert result["MEAN_F1"] == pytest.approx((24 / 28 + 8 / 12 + 1.0) / 3)
    assert result["MIN_F1"] == pytest.approx(8 / 12)
    metrics = json.loads(result["CLASS_METRICS"])
    assert metrics["crop"] == pytest.approx({"users_accuracy": 1.0, "producers_accuracy": 0.5, "f1": 8 / 12})
    assert (tmp_path / "matrix.csv").read_text(encoding="utf-8") == (
        "map \\ reference,water,crop,forest,total\nwater,12,4,0,16\ncrop,0,4,0,4\nforest,0,0,6,6\ntotal,12,8,6,26\n")
    assert result["OUTPUT_MATRIX"] == str(tmp_path / "matrix.csv")
    assert Path(result["OUTPUT_REPORT"]).is_file() and Path(result["OUTPUT_CLASS_TABLE"]).is_file()
    assert "features not in the split (SPLIT_FIELD ≠ SPLIT_VALUE)</th><td>1" in Path(
        result["OUTPUT_REPORT"]).read_text(encoding="utf-8")
