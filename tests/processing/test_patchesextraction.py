"""``otbtf:patchesextraction`` through the real qgis_process."""

from __future__ import annotations

from pathlib import Path

from osgeo import gdal

from ..vector_data import write_points
from .conftest import qgis_process
from .sampling_data import feature_count, make_image, make_polygons, manifest


def test_extraction_of_image_and_dense_labels(dev_profile, run_alg, tmp_path: Path):
    image = make_image(tmp_path / "image.tif")
    selection = run_alg("patchesselection", INPUT=image, PATCH_SIZE=16, STEP=8, STRATEGY="all",
                        POLYGONS=make_polygons(tmp_path / "polygons.gpkg"), CLASS_FIELD="landcover",
                        OUTPUT_TRAIN=tmp_path / "train.gpkg", OUTPUT_LABELS=tmp_path / "labels.tif")["results"]
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
