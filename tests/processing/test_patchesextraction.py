"""``otbtf:patchesextraction``: its parameters → job config (in process), and real runs through qgis_process."""

from __future__ import annotations

from pathlib import Path

import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingUtils

from otbtf_qgis.core.jobs.configs.patchesextraction import PatchesExtractionConfig
from tests.processing.conftest import build_config, qgis_process
from tests.processing.sampling_data import feature_count, make_image, make_polygons, manifest
from tests.vector_data import write_points


def test_config_defaults(qgis_app, layers_folder: Path, tmp_path: Path):
    config = build_config("patchesextraction", SOURCES=[layers_folder / "image.tif"],
                          POINTS=layers_folder / "points.gpkg", OUTPUT_DIR=tmp_path / "patches")
    assert config == PatchesExtractionConfig(sources=(str(layers_folder / "image.tif"),),
                                             points=str(layers_folder / "points.gpkg"),
                                             output_dir=str(tmp_path / "patches"), patch_sizes="64", source_names="",
                                             class_field="", nodata="")
    assert config == PatchesExtractionConfig(sources=(str(layers_folder / "image.tif"),),
                                             points=str(layers_folder / "points.gpkg"),
                                             output_dir=str(tmp_path / "patches"))


def test_config_from_project_layers_keeps_the_typed_lists(project_context, layers_folder: Path, tmp_path: Path):
    """Lists go to the job as typed (it parses them with the one grammar); sources keep their order."""
    image = project_context.project().mapLayersByName("image")[0]
    config = build_config("patchesextraction", project_context, SOURCES=["mask", image.id()], POINTS="points",
                          FIELD="landcover", PATCH_SIZES="16; 8x4", SOURCE_NAMES="labels\nxs", NODATA="0;none",
                          OUTPUT_DIR=tmp_path / "patches")
    assert config == PatchesExtractionConfig(
        sources=(str(layers_folder / "mask.tif"), str(layers_folder / "image.tif")),
        points=str(layers_folder / "points.gpkg"), output_dir=str(tmp_path / "patches"), patch_sizes="16; 8x4",
        source_names="labels\nxs", class_field="landcover", nodata="0;none")


def test_config_temporary_output_folder(qgis_app, layers_folder: Path):
    config = build_config("patchesextraction", SOURCES=[layers_folder / "image.tif"],
                          POINTS=layers_folder / "points.gpkg", OUTPUT_DIR="TEMPORARY_OUTPUT")
    assert Path(config.output_dir).name == "OUTPUT_DIR"
    assert Path(config.output_dir).is_relative_to(QgsProcessingUtils.tempFolder())


@pytest.mark.parametrize("params, message", [
    ({"SOURCES": []}, "SOURCES: give at least one raster"),
    ({"PATCH_SIZES": "16,16,16"}, r"PATCH_SIZES: '16,16,16' gives 3 value\(s\) for 2 source\(s\)"),
    ({"PATCH_SIZES": "16 16"}, "PATCH_SIZES: '16 16' is not a size"),  # spaces do not separate
    ({"PATCH_SIZES": "16;"}, "PATCH_SIZES: '16;' gives no size for source 2"),
    ({"SOURCE_NAMES": "xs"}, r"SOURCE_NAMES: 'xs' gives 1 value\(s\) for 2 source\(s\): give one value per source"),
    ({"NODATA": "auto"}, "NODATA: 'auto' is not a nodata value"),
    ({"NODATA": "0;1;2"}, r"NODATA: '0;1;2' gives 3 value\(s\)"),
    ({"POINTS": "missing.gpkg"}, "POINTS: 'missing.gpkg' is not a vector layer QGIS can open"),
])
def test_config_bad_values_name_the_parameter(qgis_app, layers_folder: Path, params, message):
    params = {"SOURCES": [layers_folder / "image.tif", layers_folder / "mask.tif"],
              "POINTS": layers_folder / "points.gpkg", "OUTPUT_DIR": "out", **params}
    with pytest.raises(QgsProcessingException, match=f"^{message}"):
        build_config("patchesextraction", **params)


@pytest.mark.parametrize("params", [{"PATCH_SIZES": "16"}, {"PATCH_SIZES": "16, 8x4", "SOURCE_NAMES": "a;b"},
                                    {"SOURCE_NAMES": "a;", "NODATA": "none"}, {"NODATA": ";-1"},
                                    {"NODATA": "0\nnone"}])
def test_config_accepts_every_form_of_the_grammar(qgis_app, layers_folder: Path, params):
    params = {"SOURCES": [layers_folder / "image.tif", layers_folder / "mask.tif"],
              "POINTS": layers_folder / "points.gpkg", "OUTPUT_DIR": "out", **params}
    config = build_config("patchesextraction", **params)
    assert (config.patch_sizes, config.source_names, config.nodata) == (
        params.get("PATCH_SIZES", "64"), params.get("SOURCE_NAMES", ""), params.get("NODATA", ""))


def test_extraction_of_image_and_dense_labels(dev_profile, run_alg, run_in_process, tmp_path: Path):
    image = make_image(tmp_path / "image.tif")
    selection = run_in_process("patchesselection", INPUT=image, PATCH_SIZE=16, STEP=8, STRATEGY="all",
                               POLYGONS=make_polygons(tmp_path / "polygons.gpkg"), CLASS_FIELD="landcover",
                               OUTPUT_TRAIN=tmp_path / "train.gpkg", OUTPUT_LABELS=tmp_path / "labels.tif")
    result = run_alg("patchesextraction", SOURCES=[image, tmp_path / "labels.tif"], PATCH_SIZES="16",
                     SOURCE_NAMES="xs,labels", POINTS=tmp_path / "train.gpkg", FIELD="landcover",
                     OUTPUT_DIR=tmp_path / "patches")["results"]
    assert result["N_SAMPLES"] == selection["N_TRAIN"] == feature_count(tmp_path / "train.gpkg") == 50
    assert result["MANIFEST"] == str(tmp_path / "patches" / "manifest.json")
    content = manifest(tmp_path / "patches")
    assert content["n_samples"] == 50 and content["ignore_label"] == 255
    assert content["class_mapping"] == {"crop": 0, "water": 1}
    assert sorted(p.name for p in (tmp_path / "patches").iterdir()) == [
        "labels.tif", "labels_patches.tif", "manifest.json", "xs_patches.tif"]
    xs = gdal.Open(str(tmp_path / "patches" / "xs_patches.tif"))
    assert (xs.RasterXSize, xs.RasterYSize, xs.RasterCount) == (16, 50 * 16, 3)


def test_a_foreign_output_folder_is_refused(dev_profile, tmp_path: Path):
    image = make_image(tmp_path / "image.tif")
    points = write_points(tmp_path / "points.gpkg", [(500405.0, 4499595.0)])
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.odt").write_text("precious")
    done = qgis_process(["run", "otbtf:patchesextraction", "--", f"SOURCES={image}", "PATCH_SIZES=16",
                         f"POINTS={points}", f"OUTPUT_DIR={folder}"], dev_profile)
    assert done.returncode != 0
    assert "OUTPUT_DIR: the folder" in done.stdout + done.stderr
    assert "not an otbtf_qgis output (thesis.odt)" in done.stdout + done.stderr
    assert [p.name for p in folder.iterdir()] == ["thesis.odt"]
