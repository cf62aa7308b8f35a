"""``otbtf:modelserve``: its parameters → serving config (in process), and real runs through qgis_process on a
synthetic raster and a small Keras model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from qgis.core import (
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsLayerTreeLayer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from otbtf_qgis.core.jobs.configs.modelserve import OUTPUT_TYPES, ServeConfig, SourceConfig
from otbtf_qgis.processing.provider import OtbtfProvider
from tests.processing.conftest import ROOT, algorithm, build_config, qgis_process

# TensorFlow must not be imported in this (QGIS) process: the model and the reference
# prediction are made by a separate Python.
BUILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from tests.core import saved_models as models
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
        assert names == ["SOURCES", "MODEL", "RFIELDS", "OUTPUT_NAMES", "EFIELD", "EXTENT", "MASK", "OUTPUT",
                         "OUTPUT_CLASSES",
                         "PLACEHOLDERS", "FULLYCONV", "SPCSCALE", "TILE_SIZE", "NODATA", "BACKGROUND",
                         "USER_PLACEHOLDERS", "OUTPUT_TYPE", "CREATION_OPTIONS", "COG", "SCHEDULER"]
        assert sorted(o.name() for o in algorithm.outputDefinitions()) == ["OUTPUT", "OUTPUT_CLASSES"]
        assert algorithm.groupId() == "inference"
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)


def test_config_defaults_come_from_the_model(qgis_app, layers_folder: Path, tmp_path: Path):
    config = build_config("modelserve", SOURCES=[layers_folder / "image.tif"], MODEL=tmp_path / "model",
                          OUTPUT=tmp_path / "out.tif")
    assert config == ServeConfig(
        sources=(SourceConfig(paths=(str(layers_folder / "image.tif"),), receptive_field=(), placeholder="",
                              nodata=None, use_nodata=True),),
        model=str(tmp_path / "model"), output=str(tmp_path / "out.tif"), output_names=(), expression_field=(),
        fully_convolutional=True, spacing_scale=1.0, tile_size=0, background=0.0, user_placeholders=(),
        output_type="float32", creation_options=(), cog=False, output_classes="")
    assert config == ServeConfig(sources=(SourceConfig((str(layers_folder / "image.tif"),)),),
                                 model=str(tmp_path / "model"), output=str(tmp_path / "out.tif"))


def test_config_every_value(project_context, layers_folder: Path, tmp_path: Path):
    config = build_config(
        "modelserve", project_context, SOURCES=["image", "mask"], MODEL=tmp_path / "model", RFIELDS="64; 32x16",
        PLACEHOLDERS="x1,x2", NODATA="0;none", OUTPUT_NAMES="a;\nb", EFIELD="32x16", FULLYCONV=False, SPCSCALE=2,
        TILE_SIZE=128, BACKGROUND=-1, USER_PLACEHOLDERS="dropout=0.0, is_training=false", OUTPUT_TYPE=2,
        CREATION_OPTIONS="COMPRESS=LZW;PREDICTOR=2", COG=True, OUTPUT=tmp_path / "out.tif",
        OUTPUT_CLASSES=tmp_path / "classes.tif")
    assert config == ServeConfig(
        sources=(SourceConfig((str(layers_folder / "image.tif"),), (64, 64), "x1", 0.0, True),
                 SourceConfig((str(layers_folder / "mask.tif"),), (32, 16), "x2", None, False)),
        model=str(tmp_path / "model"), output=str(tmp_path / "out.tif"), output_names=("a", "b"),
        expression_field=(32, 16), fully_convolutional=False, spacing_scale=2.0, tile_size=128, background=-1.0,
        user_placeholders=("dropout=0.0", "is_training=false"), output_type="uint8",
        creation_options=("COMPRESS=LZW", "PREDICTOR=2"), cog=True, output_classes=str(tmp_path / "classes.tif"))


def test_config_one_value_for_every_source_and_empty_entries(qgis_app, layers_folder: Path, tmp_path: Path):
    sources = [layers_folder / "image.tif", layers_folder / "mask.tif"]
    config = build_config("modelserve", SOURCES=sources, MODEL=tmp_path, OUTPUT=tmp_path / "out.tif", RFIELDS="14",
                          NODATA="-9999", PLACEHOLDERS=";x2")
    assert [(s.receptive_field, s.nodata, s.use_nodata, s.placeholder) for s in config.sources] == [
        ((14, 14), -9999.0, True, ""), ((14, 14), -9999.0, True, "x2")]
    config = build_config("modelserve", SOURCES=sources, MODEL=tmp_path, OUTPUT=tmp_path / "out.tif", RFIELDS=";14",
                          NODATA="none;")
    assert [(s.receptive_field, s.nodata, s.use_nodata) for s in config.sources] == [
        ((), None, False), ((14, 14), None, True)]


@pytest.mark.parametrize("params, message", [
    ({"RFIELDS": "14;14"}, r"RFIELDS: '14;14' gives 2 value\(s\) for 1 source\(s\)"),
    ({"RFIELDS": "14 14"}, "RFIELDS: '14 14' is not a size"),  # spaces do not separate
    ({"PLACEHOLDERS": "x1;x2"}, r"PLACEHOLDERS: 'x1;x2' gives 2 value\(s\) for 1 source\(s\)"),
    ({"NODATA": "auto"}, "NODATA: 'auto' is not a nodata value"),
    ({"EFIELD": "abc"}, "EFIELD: 'abc' is not a size"),
    ({"USER_PLACEHOLDERS": "dropout"}, "USER_PLACEHOLDERS: 'dropout' is not 'name=value'"),
    ({"CREATION_OPTIONS": "COMPRESS LZW"}, "CREATION_OPTIONS: 'COMPRESS LZW' is not KEY=VALUE"),
    ({"OUTPUT": "out.png"}, "OUTPUT: 'out.png' must be a GeoTIFF file"),
    ({"OUTPUT_CLASSES": "classes.jpg"}, "OUTPUT_CLASSES: 'classes.jpg' must be a GeoTIFF file"),
    ({"OUTPUT_CLASSES": "out.tif"}, "OUTPUT_CLASSES: the class map must be a different file from OUTPUT"),
    ({"SOURCES": []}, "SOURCES: give at least one raster"),
])
def test_config_bad_values_name_the_parameter(qgis_app, layers_folder: Path, params, message):
    params = {"SOURCES": [layers_folder / "image.tif"], "MODEL": "model", "OUTPUT": "out.tif", **params}
    with pytest.raises(QgsProcessingException, match=f"^{message}"):
        build_config("modelserve", **params)


def test_config_scheduler(qgis_app, layers_folder: Path, tmp_path: Path):
    params = {"SOURCES": [layers_folder / "image.tif"], "MODEL": tmp_path, "OUTPUT": tmp_path / "out.tif"}
    assert build_config("modelserve", **params).scheduler == ""
    assert build_config("modelserve", SCHEDULER=" local:2 ", **params).scheduler == "local:2"
    assert build_config("modelserve", SCHEDULER="tcp://10.0.0.5:8786", **params).scheduler == "tcp://10.0.0.5:8786"
    with pytest.raises(QgsProcessingException, match=r"^SCHEDULER: 'local:0' starts no worker: give local:N"):
        build_config("modelserve", SCHEDULER="local:0", **params)


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


def test_modelserve_on_a_local_dask_cluster_gives_the_same_outputs(run_alg, served_case, tmp_path, qgis_app):
    outputs = {}
    for scheduler in ("", "local:2"):
        name = scheduler.replace(":", "") or "plain"
        result = run_alg("modelserve", SOURCES=str(served_case / "image.tif"), MODEL=str(served_case / "model"),
                         TILE_SIZE=16, SCHEDULER=scheduler, OUTPUT=str(tmp_path / f"{name}.tif"),
                         OUTPUT_CLASSES=str(tmp_path / f"{name}_classes.tif"))
        assert result["results"]["OUTPUT"] == str(tmp_path / f"{name}.tif")
        outputs[name] = [gdal.Open(str(tmp_path / f"{name}{kind}.tif")) for kind in ("", "_classes")]
    for plain, distributed in zip(outputs["plain"], outputs["local2"], strict=True):
        np.testing.assert_array_equal(distributed.ReadAsArray(), plain.ReadAsArray())
        assert distributed.GetGeoTransform() == plain.GetGeoTransform()
        assert distributed.GetProjection() == plain.GetProjection()
        assert distributed.GetMetadata() == plain.GetMetadata()
    band, plain_band = outputs["local2"][1].GetRasterBand(1), outputs["plain"][1].GetRasterBand(1)
    assert band.GetRasterCategoryNames() == plain_band.GetRasterCategoryNames() == ["water", "crop", "tree"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_modelserve_bad_model_fails_clearly_without_output(dev_profile, served_case, tmp_path):
    (tmp_path / "not_a_model").mkdir()
    output = tmp_path / "out.tif"
    done = qgis_process(["run", "otbtf:modelserve", "--", f"SOURCES={served_case / 'image.tif'}",
                         f"MODEL={tmp_path / 'not_a_model'}", f"OUTPUT={output}"], dev_profile)
    assert done.returncode != 0
    assert "MODEL: " in done.stdout + done.stderr and "is not a SavedModel" in done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_model"]


# ------------------------------------------------------------------------------------------ EXTENT, MASK, outputs


def test_extent_in_the_sources_crs_and_in_another_crs(qgis_app, layers_folder: Path, tmp_path: Path):
    common = {"SOURCES": [layers_folder / "image.tif"], "MODEL": tmp_path / "model", "OUTPUT": tmp_path / "out.tif"}
    assert build_config("modelserve", **common).extent == ()
    config = build_config("modelserve", EXTENT="500100,500300,4499600,4499900 [EPSG:32631]", **common)
    assert config.extent == (500100.0, 4499600.0, 500300.0, 4499900.0)
    # the same corners in WGS 84: reprojected to the first source's CRS (UTM 31N), the bounding box of the area
    utm, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32631)
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs84 = osr.CoordinateTransformation(utm, wgs84)
    (lon0, lat0, _), (lon1, lat1, _) = to_wgs84.TransformPoint(500100, 4499600), to_wgs84.TransformPoint(500300,
                                                                                                       4499900)
    config = build_config("modelserve", EXTENT=f"{lon0!r},{lon1!r},{lat0!r},{lat1!r} [EPSG:4326]", **common)
    assert config.extent == pytest.approx((500100.0, 4499600.0, 500300.0, 4499900.0), abs=0.5)


def test_mask_is_given_to_the_worker_as_a_file_it_can_open(project_context, layers_folder: Path, tmp_path: Path):
    common = {"SOURCES": ["image"], "MODEL": tmp_path / "model", "OUTPUT": tmp_path / "out.tif"}
    assert build_config("modelserve", project_context, **common).mask == ""
    config = build_config("modelserve", project_context, MASK="polygons", **common)
    assert config.mask == str(layers_folder / "polygons.gpkg")  # a file with one layer, opened without its name
    # only the selected polygons: QGIS writes them to a temporary GeoPackage
    layer = project_context.project().mapLayersByName("polygons")[0]
    layer.selectByIds([next(layer.getFeatures()).id()])
    selected = QgsProcessingFeatureSourceDefinition(layer.id(), True)
    config = build_config("modelserve", project_context, MASK=selected, **common)
    path = config.mask.split("|")[0]
    assert path != str(layers_folder / "polygons.gpkg") and Path(path).suffix == ".gpkg"
    assert QgsVectorLayer(config.mask, "copy", "ogr").featureCount() == 1
    # a memory layer is written too
    memory = QgsVectorLayer("Polygon?crs=EPSG:32631", "drawn", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt("POLYGON ((500100 4499900, 500300 4499900, 500300 4499700, "
                                            "500100 4499900))"))
    memory.dataProvider().addFeatures([feature])
    project_context.project().addMapLayer(memory)
    config = build_config("modelserve", project_context, MASK=memory.id(), **common)
    assert QgsVectorLayer(config.mask, "copy", "ogr").featureCount() == 1


def test_class_map_only_and_no_output_at_all(qgis_app, layers_folder: Path, tmp_path: Path):
    common = {"SOURCES": [layers_folder / "image.tif"], "MODEL": tmp_path / "model"}
    config = build_config("modelserve", OUTPUT_CLASSES=tmp_path / "classes.tif", **common)
    assert (config.output, config.output_classes) == ("", str(tmp_path / "classes.tif"))
    with pytest.raises(QgsProcessingException) as error:
        build_config("modelserve", **common)
    assert str(error.value) == ("OUTPUT: give the output raster file (OUTPUT), the class map (OUTPUT_CLASSES) or "
                                "both.")
    config = build_config("modelserve", OUTPUT=tmp_path / "p.tif", OUTPUT_TYPE=OUTPUT_TYPES.index("scaled_uint8"),
                          **common)
    assert config.output_type == "scaled_uint8"


def load_results(context: QgsProcessingContext, order: list[str]) -> None:
    """What QGIS does with the layers to load (processing/gui/Postprocessing.py), in the given path order."""
    details_by_path = context.layersToLoadOnCompletion()
    for path in order:
        details = details_by_path[path]
        layer = QgsProcessingUtils.mapLayerFromString(path, context)
        details.setOutputLayerName(layer)
        details.project.addMapLayer(context.temporaryLayerStore().takeMapLayer(layer))
        if details.postProcessor():
            details.postProcessor().postProcessLayer(layer, context, QgsProcessingFeedback())


@pytest.mark.parametrize("reverse", [False, True])
def test_loaded_layers_are_named_after_their_files_with_the_class_map_on_top(qgis_app, served_case, tmp_path,
                                                                            monkeypatch, reverse):
    monkeypatch.setenv("OTBTF_QGIS_PYTHON", sys.executable)
    project = QgsProject()
    project.addMapLayer(QgsRasterLayer(str(served_case / "image.tif"), "image"))
    context = QgsProcessingContext()
    context.setProject(project)
    output, classes = tmp_path / "forest_scores.tif", tmp_path / "forest_map.tif"
    alg = algorithm("modelserve")
    parameters = {"SOURCES": [str(served_case / "image.tif")], "MODEL": str(served_case / "model"),
                  "OUTPUT": QgsProcessingOutputLayerDefinition(str(output), project),
                  "OUTPUT_CLASSES": QgsProcessingOutputLayerDefinition(str(classes), project),
                  "EXTENT": "300100,300200,4999850,4999950 [EPSG:32631]"}
    results, ok = alg.run(parameters, context, QgsProcessingFeedback(), {}, False)
    assert ok and results["OUTPUT"] == str(output)
    assert gdal.Open(str(output)).GetGeoTransform() == (300100.0, 5.0, 0.0, 4999950.0, 0.0, -5.0)
    details = context.layersToLoadOnCompletion()
    assert {path: (d.name, d.forceName) for path, d in details.items()} == {
        str(output): ("forest_scores", True), str(classes): ("forest_map", True)}
    order = sorted(details, reverse=reverse)
    load_results(context, order)
    names = [node.layer().name() for node in project.layerTreeRoot().children() if isinstance(node, QgsLayerTreeLayer)]
    assert names == ["forest_map", "forest_scores", "image"]
    del context, alg, parameters
    project.clear()


def test_temporary_outputs_are_named_after_the_model_and_its_outputs(qgis_app, served_case, monkeypatch):
    monkeypatch.setenv("OTBTF_QGIS_PYTHON", sys.executable)
    project = QgsProject()
    context = QgsProcessingContext()
    context.setProject(project)
    parameters = {"SOURCES": [str(served_case / "image.tif")], "MODEL": str(served_case / "model"),
                  "OUTPUT_CLASSES": QgsProcessingOutputLayerDefinition("TEMPORARY_OUTPUT", project),
                  "MASK": str(served_case / "mask.gpkg")}
    polygon = ogr.CreateGeometryFromWkt("POLYGON ((300050 4999900, 300200 4999900, 300200 4999850, "
                                        "300050 4999900))")
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(served_case / "mask.gpkg"))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    layer = dataset.CreateLayer("mask", srs, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(polygon)
    layer.CreateFeature(feature)
    dataset = None
    results, ok = algorithm("modelserve").run(parameters, context, QgsProcessingFeedback(), {}, False)
    assert ok and results["OUTPUT"] is None
    details = context.layersToLoadOnCompletion()
    assert [(d.name, d.forceName) for d in details.values()] == [("model: classes", True)]
    classes = gdal.Open(results["OUTPUT_CLASSES"]).ReadAsArray()
    assert (classes == 255).any() and (classes < 3).any()  # the mask covers part of the grid


def test_class_map_only_inside_a_mask_and_an_extent_through_qgis_process(run_alg, served_case, tmp_path):
    # the extent in WGS 84 around output columns [10, 50) and rows [4, 28) of the grid (5 m pixels from
    # (300015, 4999985)); the mask keeps the left half of it
    utm, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32631)
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs84 = osr.CoordinateTransformation(utm, wgs84)
    lon0, lat0, _ = to_wgs84.TransformPoint(300015 + 5 * 10.2, 4999985 - 5 * 27.8)
    lon1, lat1, _ = to_wgs84.TransformPoint(300015 + 5 * 49.8, 4999985 - 5 * 4.2)
    mask = tmp_path / "mask.gpkg"
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(mask))
    layer = dataset.CreateLayer("fields", utm, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON ((300000 5000000, 300165 5000000, 300165 4999000, "
                                                  "300000 4999000, 300000 5000000))"))
    layer.CreateFeature(feature)
    dataset = None
    classes = tmp_path / "classes.tif"
    result = run_alg("modelserve", SOURCES=str(served_case / "image.tif"), MODEL=str(served_case / "model"),
                     TILE_SIZE=16, OUTPUT_CLASSES=str(classes), MASK=f"{mask}|layername=fields",
                     EXTENT=f"{lon0!r},{lon1!r},{lat0!r},{lat1!r} [EPSG:4326]")
    assert result["results"]["OUTPUT_CLASSES"] == str(classes) and not result["results"].get("OUTPUT")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.qml", "classes.tif", "classes.tif.aux.xml",
                                                          "mask.gpkg"]
    out = gdal.Open(str(classes))
    # the extent reprojected to UTM (the bounding box of the WGS 84 rectangle: a little larger, the grids are
    # rotated by ~1.4 degrees there) snapped outward to whole pixels of the grid: columns [10, 50), rows [4, 28)
    # and at most 3 more pixels on a side, on the grid's phase
    x0, dx, _, y0, _, dy = out.GetGeoTransform()
    col, row = (x0 - 300015) / 5, (4999985 - y0) / 5
    assert (dx, dy) == (5.0, -5.0) and col.is_integer() and row.is_integer()
    col, row = int(col), int(row)
    width, height = out.RasterXSize, out.RasterYSize
    assert 7 <= col <= 10 and 1 <= row <= 4 and 50 <= col + width <= 53 and 28 <= row + height <= 31
    expected = np.argmax(np.load(served_case / "expected.npy")[row:row + height, col:col + width], axis=2)
    values = out.ReadAsArray()
    # the mask ends at x = 300165, the left edge of grid column 30
    inside = 30 - col
    np.testing.assert_array_equal(values[:, :inside], expected[:, :inside])
    assert (values[:, inside:] == 255).all() and out.GetRasterBand(1).GetNoDataValue() == 255
