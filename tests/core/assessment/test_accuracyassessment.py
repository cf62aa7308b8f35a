"""The ``accuracyassessment`` job end to end on tiny synthetic class maps and references."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from otbtf_qgis.core.assessment import accuracyassessment as job
from otbtf_qgis.core.assessment.accuracyassessment import accuracy_assessment
from otbtf_qgis.core.assessment.classmap import open_class_map
from otbtf_qgis.core.assessment.statistics import olofsson_areas
from otbtf_qgis.core.errors import CancelledError, InputError
from otbtf_qgis.core.io.raster import GeoTiffWriter
from otbtf_qgis.core.io.windows import Window
from otbtf_qgis.core.jobs.configs.accuracyassessment import AccuracyAssessmentConfig
from tests.core.conftest import CancelAfter, make_raster
from tests.vector_data import rectangle, write_layer, write_points

X0, Y0, SPACING = 500000.0, 4500000.0, 10.0
NAMES = ["water", "crop", "forest"]


def geo(u: float, v: float) -> tuple[float, float]:
    """Map coordinates of pixel coordinates (u: columns, v: rows from the top-left corner)."""
    return X0 + u * SPACING, Y0 - v * SPACING


def box(u0: float, v0: float, u1: float, v1: float) -> str:
    """A rectangle given in pixel coordinates."""
    (x0, y0), (x1, y1) = geo(u0, v1), geo(u1, v0)
    return rectangle(x0, y0, x1, y1)


def map_array() -> np.ndarray:
    """20 x 24 pixels: water (0) in columns 0-7, crop (1) in 8-15, forest (2) in 16-23; 4 nodata pixels
    (rows 0-1, columns 0-1) and 8 crop pixels in the water (rows 10-11, columns 4-7)."""
    array = np.zeros((20, 24), np.uint8)
    array[:, 8:16] = 1
    array[:, 16:] = 2
    array[0:2, 0:2] = 255
    array[10:12, 4:8] = 1
    return array


def class_map(path: Path, array: np.ndarray | None = None, names: list[str] | None = NAMES, **kwargs) -> Path:
    """The class map, with GDAL category names written by GDAL directly (as a .aux.xml side file)."""
    make_raster(path, map_array() if array is None else array, nodata=255, **kwargs)
    if names:
        dataset = gdal.Open(str(path), gdal.GA_Update)
        dataset.GetRasterBand(1).SetRasterCategoryNames(names)
        dataset = None
    return path


# Polygons (pixel coordinates) and what they cover, pixel centres only:
# - water, columns 0-3 (the edge at u = 4.3 passes through column 4, whose centre 4.5 is outside), rows 0-2:
#   12 pixels of which 4 are nodata → 8 water;
# - water, columns 2-7, rows 9-12: 24 pixels, 16 water and 8 crop (rows 10-11, columns 4-7);
# - crop, u 8.3-11.7 x v 5.6-7.4: the centres 8.5…11.5 x 6.5 → 4 crop pixels (ALL_TOUCHED would take 12);
# - forest, columns 14-17, rows 15-16: 4 crop (columns 14-15) and 4 forest pixels;
# - ' Forest ' (case and spaces) over no pixel centre; 'urban', not a class of the map;
# - water outside the map; crop without class value.
POLYGONS = [box(0, 0, 4.3, 3), box(2, 9, 8, 13), box(8.3, 5.6, 11.7, 7.4), box(14, 15, 18, 17),
            box(20.1, 1.1, 20.4, 1.4), box(20, 5, 22, 7), box(30, 0, 32, 2), box(1, 15, 3, 17)]
CLASSES = ["water", "Water", "crop", "forest", " Forest ", "urban", "water", None]
# rows: map water, crop, forest; columns: reference water, crop, forest
MATRIX = [[24, 0, 0],
          [8, 4, 4],
          [0, 0, 4]]
MATRIX_CSV = ("map \\ reference,water,crop,forest,total\n"
              "water,24,0,0,24\n"
              "crop,8,4,4,16\n"
              "forest,0,0,4,4\n"
              "total,32,4,8,44\n")


def config(tmp_path: Path, **kwargs) -> AccuracyAssessmentConfig:
    values = {"input": str(tmp_path / "map.tif"), "output_matrix": str(tmp_path / "matrix.csv")}
    values.update(kwargs)
    return AccuracyAssessmentConfig(**values)


@pytest.fixture
def polygons(tmp_path: Path) -> Path:
    class_map(tmp_path / "map.tif")
    return write_layer(tmp_path / "polygons.gpkg", POLYGONS, fields={"landcover": CLASSES})


def test_polygons_give_the_matrix_the_accuracies_and_the_left_out_counts(tmp_path: Path, polygons: Path):
    result = accuracy_assessment(config(tmp_path, reference=str(polygons), class_field="landcover",
                                        output_report=str(tmp_path / "report.html"),
                                        output_class_table=str(tmp_path / "classes.csv")))
    assert result["classes"] == NAMES and result["codes"] == [0, 1, 2]
    assert result["matrix"] == MATRIX
    assert (tmp_path / "matrix.csv").read_text(encoding="utf-8") == MATRIX_CSV
    assert result["left_out"] == {"not_in_split": 0, "no_class_value": 1, "no_geometry": 0, "unknown_class": 1,
                                  "outside_map": 1, "no_pixel_centre": 1, "map_nodata_pixels": 4}
    assert result["unknown_classes"] == ["urban"]
    # OA = (24 + 4 + 4) / 44 = 8/11 over 4 polygons (c_k, t_k) = (8, 8), (16, 24), (4, 4), (4, 8):
    # c_k − OA·t_k = 24/11, −16/11, 12/11, −20/11; Σ² = (576 + 256 + 144 + 400)/121 = 1376/121
    # SE² = 4/3 · (1376/121) / 44²
    se = math.sqrt(4 / 3 * 1376 / 121 / 44 ** 2)
    assert result["overall_accuracy"] == pytest.approx(8 / 11)
    assert result["overall_accuracy_se"] == pytest.approx(se)
    assert result["overall_accuracy_low"] == pytest.approx(8 / 11 - 1.96 * se)
    assert result["overall_accuracy_high"] == pytest.approx(8 / 11 + 1.96 * se)
    assert (result["sampling_units"], result["assessed_pixels"]) == (4, 44)
    # p_e = (24·32 + 16·4 + 4·8) / 44² = 864/1936; κ = (32/44 − 864/1936) / (1 − 864/1936)
    assert result["kappa"] == pytest.approx((32 / 44 - 864 / 1936) / (1 - 864 / 1936))
    # UA = 24/24, 4/16, 4/4; PA = 24/32, 4/4, 4/8; F1 = 2 n_ii / (n_i· + n_·i) = 48/56, 8/20, 8/12
    metrics = result["class_metrics"]
    assert [metrics[n]["users_accuracy"] for n in NAMES] == pytest.approx([1.0, 0.25, 1.0])
    assert [metrics[n]["producers_accuracy"] for n in NAMES] == pytest.approx([0.75, 1.0, 0.5])
    assert [metrics[n]["f1"] for n in NAMES] == pytest.approx([48 / 56, 8 / 20, 8 / 12])
    assert result["mean_f1"] == pytest.approx((48 / 56 + 8 / 20 + 8 / 12) / 3)
    assert result["min_f1"] == pytest.approx(0.4)
    assert set(metrics) == set(NAMES) and json.dumps(metrics)  # JSON-ready
    # The whole map: water 160 − 4 nodata − 8 crop = 148, crop 168, forest 160 pixels of 100 m².
    assert [result["per_class"][n]["map_pixels"] for n in NAMES] == [148, 168, 160]
    assert (result["map_pixels"], result["nodata_pixels"]) == (476, 4)
    assert result["total_area"] == 47_600.0 and result["area_unit"] == "m²" and result["total_area_ha"] == 4.76
    areas = olofsson_areas(MATRIX, [148, 168, 160], 100.0)
    assert [result["per_class"][n]["estimated_area"] for n in NAMES] == pytest.approx(areas.area.tolist())
    assert [result["per_class"][n]["estimated_area_ci95"] for n in NAMES] == pytest.approx(areas.area_ci.tolist())
    assert result["outputs"] == {"matrix": str(tmp_path / "matrix.csv"), "class_table": str(tmp_path / "classes.csv"),
                                 "report": str(tmp_path / "report.html")}
    table = (tmp_path / "classes.csv").read_text(encoding="utf-8").splitlines()
    assert table[0] == ("class,code,users_accuracy,producers_accuracy,f1,map_sample_pixels,reference_pixels,"
                        "map_pixels,mapped_area,estimated_area,estimated_area_ci95,mapped_area_ha,estimated_area_ha,"
                        "estimated_area_ci95_ha")
    assert table[1].startswith("water,0,1.0,0.75,0.8571428571428571,24,32,148,14800.0,")
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    for text in ("72.73 % (95 % CI", "polygons covering no pixel centre of the map</th><td>1",
                 "reference pixels on the map&#x27;s nodata</th><td>4", "classes not in the map</th><td>urban",
                 "Pixels within a polygon are not independent", "too narrow", "Olofsson", "4.76 ha"):
        assert text in report, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.csv", "map.tif", "map.tif.aux.xml", "matrix.csv",
                                                          "polygons.gpkg", "report.html"]


def test_the_centre_rule_takes_pixels_whose_centre_is_inside(tmp_path: Path):
    class_map(tmp_path / "map.tif")
    # An edge at u = 4.5 would pass through the centres of column 4: at 4.3 and 4.7 it clearly does not.
    for right, columns in ((4.3, 4), (4.7, 5)):
        path = write_layer(tmp_path / f"edge{right}.gpkg", [box(2, 4, right, 6)], fields={"c": [0]})
        result = accuracy_assessment(config(tmp_path, reference=str(path), class_field="c"))
        assert result["assessed_pixels"] == 2 * (columns - 2)


def test_points_take_the_pixel_they_fall_in(tmp_path: Path):
    class_map(tmp_path / "map.tif")
    xy = [geo(5.5, 5.5), geo(10.2, 3.9), geo(4.5, 10.5), geo(0.5, 0.5), geo(30, 5), geo(20.5, 19.99)]
    # water on water; crop on crop; water on crop; water on nodata; outside; forest on forest
    path = write_points(tmp_path / "points.gpkg", xy, fields={"cls": ["water", "crop", "water", "water", "crop",
                                                                      "forest"]})
    result = accuracy_assessment(config(tmp_path, reference=str(path), class_field="cls",
                                        output_report=str(tmp_path / "r.html")))
    assert result["matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert result["left_out"]["map_nodata_pixels"] == 1 and result["left_out"]["outside_map"] == 1
    assert result["left_out"]["no_pixel_centre"] == 0
    # Points are the usual binomial interval: OA = 3/4, SE² = 0.75·0.25/3 = 1/16
    assert result["overall_accuracy"] == 0.75
    assert result["overall_accuracy_se"] == pytest.approx(0.25)
    assert (result["overall_accuracy_low"], result["overall_accuracy_high"]) == pytest.approx((0.26, 1.0))
    assert result["reference_kind"] == "points"
    report = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "usual binomial interval" in report
    # Water and forest are mapped on a single point each: no variance from those strata, and the report says so.
    assert result["strata_without_variance"] == ["water", "forest"] and result["strata_without_sample"] == []
    assert "Map classes with a single reference pixel: water, forest. A stratum needs at least two" in report


def test_nodata_overrides_the_maps_own(tmp_path: Path):
    array = np.ones((6, 8), np.uint8)  # classes 1 and 2 in a border of 0, and no nodata value in the file
    array[:, 4:] = 2
    array[0, :] = 0
    make_raster(tmp_path / "map.tif", array)
    path = write_points(tmp_path / "points.gpkg", [geo(1.5, 0.5), geo(1.5, 2.5), geo(5.5, 2.5), geo(5.5, 0.5)],
                        fields={"cls": [1, 1, 2, 2]})
    as_is = accuracy_assessment(config(tmp_path, reference=str(path), class_field="cls"))
    assert as_is["classes"] == ["0", "1", "2"] and as_is["matrix"] == [[0, 1, 1], [0, 1, 0], [0, 0, 1]]
    assert as_is["nodata_pixels"] == 0
    result = accuracy_assessment(config(tmp_path, reference=str(path), class_field="cls", nodata=0))
    assert result["classes"] == ["1", "2"] and result["matrix"] == [[1, 0], [0, 1]]
    assert result["left_out"]["map_nodata_pixels"] == 2
    assert (result["nodata_pixels"], result["map_pixels"]) == (8, 40)


@pytest.mark.parametrize("codes", [[0, 1, 0, 0, 1, 2], ["0", " 1", "0", "0", "1", "2"], [0.0, 1.0, 0.0, 0.0, 1.0, 2.0]])
def test_integer_codes_match_map_codes(tmp_path: Path, codes: list):
    class_map(tmp_path / "map.tif", names=None)  # codes need no names
    xy = [geo(5.5, 5.5), geo(10.2, 3.9), geo(4.5, 10.5), geo(0.5, 0.5), geo(30, 5), geo(20.5, 19.99)]
    path = write_points(tmp_path / "points.gpkg", xy, fields={"cls": codes})
    result = accuracy_assessment(config(tmp_path, reference=str(path), class_field="cls"))
    assert result["matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert result["classes"] == ["0", "1", "2"]


def test_unknown_codes_are_left_out_and_named(tmp_path: Path):
    class_map(tmp_path / "map.tif")
    path = write_points(tmp_path / "points.gpkg", [geo(5.5, 5.5), geo(10.5, 3.5), geo(12.5, 3.5)],
                        fields={"cls": [0, 7, 1]})
    messages: list[str] = []

    class Warnings(CancelAfter):
        def warning(self, message: str) -> None:
            messages.append(message)

    result = accuracy_assessment(config(tmp_path, reference=str(path), class_field="cls"), Warnings(10 ** 6))
    assert result["matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert result["left_out"]["unknown_class"] == 1 and result["unknown_classes"] == ["7"]
    assert result["strata_without_sample"] == ["forest"]  # mapped, never sampled: left out of the area estimates
    assert messages == ["reference codes 7 are not classes of the map: their features are left out."]


def test_class_names_replace_the_maps_own(tmp_path: Path):
    class_map(tmp_path / "map.tif", names=["class 0", "class 1", "class 2"])
    path = write_points(tmp_path / "points.gpkg", [geo(5.5, 5.5), geo(10.5, 3.5)], fields={"cls": ["eau", "CULTURE"]})
    result = accuracy_assessment(config(tmp_path, reference=str(path), class_field="cls",
                                        class_names=("eau", "culture", "foret")))
    assert result["classes"] == ["eau", "culture", "foret"] and result["matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_a_reprojected_reference_gives_the_same_matrix(tmp_path: Path, polygons: Path):
    to_wgs84 = osr.CoordinateTransformation(srs(32631), srs(4326))
    reprojected = []
    for wkt in POLYGONS:
        geometry = ogr_geometry(wkt)
        geometry.Transform(to_wgs84)
        reprojected.append(geometry.ExportToWkt())
    path = write_layer(tmp_path / "wgs84.gpkg", reprojected, epsg=4326, fields={"landcover": CLASSES})
    utm = accuracy_assessment(config(tmp_path, reference=str(polygons), class_field="landcover"))
    wgs84 = accuracy_assessment(config(tmp_path, reference=str(path), class_field="landcover"))
    assert wgs84["matrix"] == utm["matrix"] == MATRIX
    assert wgs84["left_out"] == utm["left_out"]


def srs(epsg: int) -> osr.SpatialReference:
    result = osr.SpatialReference()
    result.ImportFromEPSG(epsg)
    result.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return result


def ogr_geometry(wkt: str):
    from osgeo import ogr

    return ogr.CreateGeometryFromWkt(wkt)


def test_a_reference_without_crs_is_taken_in_the_maps(tmp_path: Path, polygons: Path):
    path = write_layer(tmp_path / "nocrs.gpkg", POLYGONS, epsg=None, fields={"landcover": CLASSES})
    messages: list[str] = []

    class Warnings(CancelAfter):
        def warning(self, message: str) -> None:
            messages.append(message)

    result = accuracy_assessment(config(tmp_path, reference=str(path), class_field="landcover"), Warnings(10 ** 6))
    assert result["matrix"] == MATRIX
    assert messages[0] == "REFERENCE has no CRS: its coordinates are taken to be in the map's, EPSG:32631."


def test_lines_are_no_reference(tmp_path: Path):
    class_map(tmp_path / "map.tif")
    path = write_layer(tmp_path / "lines.gpkg", ["LINESTRING (500000 4499900, 500100 4499950)"], fields={"c": [0]})
    expect_error(tmp_path, "REFERENCE", f"'{path}' holds Line String geometries: the reference must be polygons or "
                 "points.", reference=str(path), class_field="c")


def test_split_field_keeps_the_test_features(tmp_path: Path):
    class_map(tmp_path / "map.tif")
    # The same polygons as test features, and train/valid ones on top that would change every count.
    geometries = [*POLYGONS, box(16, 0, 20, 4), box(8, 0, 12, 2)]
    split = ["test", "TEST ", "test", "test", "test", "test", "test", "test", "train", None]
    path = write_layer(tmp_path / "split.gpkg", geometries, fields={"landcover": [*CLASSES, "water", "crop"],
                                                                    "split": split})
    result = accuracy_assessment(config(tmp_path, reference=str(path), class_field="landcover",
                                        split_field="split"))
    assert result["matrix"] == MATRIX
    assert result["left_out"]["not_in_split"] == 2
    with pytest.raises(InputError) as error:
        accuracy_assessment(config(tmp_path, reference=str(path), class_field="landcover", split_field="split",
                                   split_value="valid"))
    assert error.value.parameter == "SPLIT_VALUE"
    assert error.value.message == ("no feature of REFERENCE has split = 'valid' (values found: TEST, test, train). "
                                   "Give one of those values, or leave SPLIT_FIELD empty to assess every feature.")


def test_a_reference_raster_on_the_map_grid(tmp_path: Path):
    class_map(tmp_path / "map.tif")
    labels = np.full((20, 24), 255, np.uint8)
    labels[10:12, 2:8] = 0   # 4 water on water, 8 water on crop
    labels[3, 8:12] = 1      # 4 crop on crop
    labels[19, 16:20] = 2    # 4 forest on forest
    labels[5, 20] = 7        # not a class of the map
    labels[0, 0] = 0         # on the map's nodata
    labels[19, 0:3] = 254    # the raster's nodata
    make_raster(tmp_path / "labels.tif", labels, nodata=254)
    result = accuracy_assessment(config(tmp_path, reference_raster=str(tmp_path / "labels.tif")))
    assert result["matrix"] == [[4, 0, 0], [8, 4, 0], [0, 0, 4]]
    assert result["left_out"] == {"unknown_class": 1, "map_nodata_pixels": 1}
    assert result["unknown_classes"] == ["7"]
    # Each pixel is a sampling unit: OA = 12/20, SE² = 0.6·0.4/19
    assert result["overall_accuracy"] == pytest.approx(0.6)
    assert result["overall_accuracy_se"] == pytest.approx(math.sqrt(0.24 / 19))
    assert (result["sampling_units"], result["reference_kind"]) == (20, "raster")


def test_a_reference_raster_off_the_map_grid_says_how_to_fix_it(tmp_path: Path):
    class_map(tmp_path / "map.tif")
    make_raster(tmp_path / "coarse.tif", np.zeros((10, 12), np.uint8),
                geotransform=(X0, 20.0, 0.0, Y0, 0.0, -20.0))
    with pytest.raises(InputError) as error:
        accuracy_assessment(config(tmp_path, reference_raster=str(tmp_path / "coarse.tif")))
    assert error.value.parameter == "REFERENCE_RASTER"
    assert error.value.message == (
        f"'{tmp_path / 'coarse.tif'}' is not on the grid of INPUT: it is 12x10 pixels, origin (500000, 4500000), "
        "pixel size 20 x 20, EPSG:32631; the map is 24x20 pixels, origin (500000, 4500000), pixel size 10 x 10, "
        "EPSG:32631. Put it on the map's grid with nearest neighbour, e.g. gdalwarp -t_srs EPSG:32631 -te 500000 "
        f"4499800 500240 4500000 -tr 10 10 -r near '{tmp_path / 'coarse.tif'}' reference_on_map.tif")
    assert not (tmp_path / "matrix.csv").exists()


def test_names_written_by_our_class_map_writer_come_back(tmp_path: Path):
    path = tmp_path / "classes.tif"
    with GeoTiffWriter(path, 4, 3, 1, np.uint8, (X0, 10, 0, Y0, 0, -10), "", nodata=255) as writer:
        writer.write(Window(0, 0, 4, 3), np.arange(12, dtype=np.uint8).reshape(3, 4) % 3)
        writer.set_color_table([(30, 90, 200), (235, 200, 60), (20, 110, 40)], ["water", "crop", "tree & co"])
    _, described = open_class_map(path)
    assert described.names == {0: "water", 1: "crop", 2: "tree & co"}
    assert described.names_source == "category names" and described.nodata == 255
    assert described.area_unit == "map units²" and described.pixel_area == 100.0


def test_a_map_in_many_strips_gives_the_same_result_as_in_one(tmp_path: Path):
    rng = np.random.default_rng(5)
    array = rng.integers(0, 4, (90, 100)).astype(np.uint16)
    array[rng.random((90, 100)) < 0.05] = 255
    class_map(tmp_path / "map.tif", array, names=["a", "b", "c", "d"])  # 16 x 16 tiles
    # Rectangles on a grid of cells (no overlap), edges off the pixel centres, and points.
    boxes, classes, expected = [], [], np.zeros((4, 4), np.int64)
    for i in range(9):
        for j in range(10):
            u0, v0 = j * 10 + rng.uniform(0.1, 0.4), i * 10 + rng.uniform(0.1, 0.4)
            u1, v1 = u0 + rng.uniform(2, 9), v0 + rng.uniform(2, 9)
            code = int(rng.integers(0, 4))
            boxes.append(box(u0, v0, u1, v1))
            classes.append(code)
            cols = np.arange(100)[(np.arange(100) + 0.5 > u0) & (np.arange(100) + 0.5 < u1)]
            rows = np.arange(90)[(np.arange(90) + 0.5 > v0) & (np.arange(90) + 0.5 < v1)]
            pixels = array[np.ix_(rows, cols)].ravel()
            for value in pixels[pixels != 255]:
                expected[value, code] += 1
    path = write_layer(tmp_path / "boxes.gpkg", boxes, fields={"c": classes})
    whole = accuracy_assessment(config(tmp_path, reference=str(path), class_field="c"))
    strips = accuracy_assessment(config(tmp_path, reference=str(path), class_field="c",
                                        output_matrix=str(tmp_path / "m7.csv")), rows=7)
    assert whole["matrix"] == expected.tolist()
    assert {k: v for k, v in strips.items() if k != "outputs"} == {k: v for k, v in whole.items() if k != "outputs"}
    assert (tmp_path / "m7.csv").read_text(encoding="utf-8") == (tmp_path / "matrix.csv").read_text(encoding="utf-8")
    points = rng.uniform((0, 0), (100, 90), (200, 2))
    point_path = write_points(tmp_path / "points.gpkg", [geo(u, v) for u, v in points],
                              fields={"c": [int(c) for c in rng.integers(0, 4, 200)]})
    whole = accuracy_assessment(config(tmp_path, reference=str(point_path), class_field="c"))
    strips = accuracy_assessment(config(tmp_path, reference=str(point_path), class_field="c"), rows=3)
    assert strips["matrix"] == whole["matrix"] and strips["overall_accuracy"] == whole["overall_accuracy"]
    assert sum(map(sum, whole["matrix"])) + whole["left_out"]["map_nodata_pixels"] == 200


def test_cancel_leaves_no_file(tmp_path: Path, polygons: Path):
    outputs = {"output_report": str(tmp_path / "r.html"), "output_class_table": str(tmp_path / "t.csv")}
    before = sorted(p.name for p in tmp_path.iterdir())
    # Two strips of 10 rows: cancelled at the first strip, the second, after them, and once the outputs are
    # written but not yet published.
    for calls in (0, 1, 2, 3):
        with pytest.raises(CancelledError):
            accuracy_assessment(config(tmp_path, reference=str(polygons), class_field="landcover", **outputs),
                                CancelAfter(calls), rows=10)
        assert sorted(p.name for p in tmp_path.iterdir()) == before
    accuracy_assessment(config(tmp_path, reference=str(polygons), class_field="landcover", **outputs),
                        CancelAfter(4), rows=10)  # four checks in all: not cancelled
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "matrix.csv", "r.html", "t.csv"])


def expect_error(tmp_path: Path, parameter: str, message: str, **kwargs) -> None:
    with pytest.raises(InputError) as error:
        accuracy_assessment(config(tmp_path, **kwargs))
    assert (error.value.parameter, error.value.message) == (parameter, message)
    assert not (tmp_path / "matrix.csv").exists()


def test_a_reference_that_does_not_overlap_the_map(tmp_path: Path):
    class_map(tmp_path / "map.tif")
    path = write_layer(tmp_path / "far.gpkg", [box(100, 0, 102, 2), box(0, 50, 2, 53)], fields={"c": ["water", "crop"]})
    expect_error(tmp_path, "REFERENCE",
                 "none of the 2 reference features overlaps INPUT: the map covers x 500000 to 500240, y 4499800 to "
                 "4500000 (EPSG:32631) and the features, in the map's CRS, x 500000 to 501020, y 4499470 to "
                 "4500000. Check that the reference is for this map and that its CRS is right.",
                 reference=str(path), class_field="c")


def test_reference_names_none_of_which_are_the_maps(tmp_path: Path):
    class_map(tmp_path / "map.tif")
    path = write_points(tmp_path / "p.gpkg", [geo(1.5, 5.5), geo(2.5, 5.5)], fields={"c": ["urban", "bare"]})
    expect_error(tmp_path, "CLASS_FIELD",
                 "none of the reference classes (bare, urban) is a class of the map (water, crop, forest). Use the "
                 "map's class names (compared without case), or give CLASS_NAMES.",
                 reference=str(path), class_field="c")


def test_reference_codes_none_of_which_are_the_maps(tmp_path: Path):
    class_map(tmp_path / "map.tif")
    path = write_points(tmp_path / "p.gpkg", [geo(1.5, 5.5), geo(2.5, 5.5)], fields={"c": [8, 9]})
    expect_error(tmp_path, "CLASS_FIELD",
                 "none of the reference codes (8, 9) is a class of the map (its codes: 0 (water), 1 (crop), 2 "
                 "(forest)). Check that the reference is for this map, or use class names.",
                 reference=str(path), class_field="c")


def test_a_class_field_of_mixed_types(tmp_path: Path):
    class_map(tmp_path / "map.tif")
    path = write_points(tmp_path / "p.gpkg", [geo(1.5, 5.5)] * 4, fields={"c": ["water", "1", "crop", "2"]})
    expect_error(tmp_path, "CLASS_FIELD",
                 "the field 'c' mixes integer codes (e.g. 1, 2) and class names (e.g. crop, water): give the map's "
                 "class names in every feature, or its integer codes in every feature.",
                 reference=str(path), class_field="c")


def test_an_empty_reference(tmp_path: Path):
    class_map(tmp_path / "map.tif")
    path = write_layer(tmp_path / "empty.gpkg", [], fields={"c": []})
    expect_error(tmp_path, "REFERENCE",
                 f"the layer '{path}' has no feature. Give reference polygons or points with their class.",
                 reference=str(path), class_field="c")
    split = write_points(tmp_path / "split.gpkg", [geo(1.5, 5.5)], fields={"c": ["water"], "s": ["train"]})
    expect_error(tmp_path, "SPLIT_VALUE",
                 "no feature of REFERENCE has s = 'test' (values found: train). Give one of those values, or leave "
                 "SPLIT_FIELD empty to assess every feature.",
                 reference=str(split), class_field="c", split_field="s")


def test_a_map_without_names_and_a_text_class_field(tmp_path: Path):
    class_map(tmp_path / "map.tif", names=None)
    path = write_points(tmp_path / "p.gpkg", [geo(1.5, 5.5), geo(9.5, 5.5)], fields={"c": ["water", "crop"]})
    expect_error(tmp_path, "CLASS_NAMES",
                 "INPUT has no class names and CLASS_FIELD 'c' holds names (e.g. crop, water): give CLASS_NAMES, the "
                 "map's class names in the order of its codes 0, 1, 2… separated by commas.",
                 reference=str(path), class_field="c")


@pytest.mark.parametrize(("array", "what"), [(np.zeros((4, 4), np.float32), "pixels of type float32"),
                                             (np.zeros((4, 4, 2), np.uint8), "2 bands")])
def test_a_map_that_is_not_single_band_integer(tmp_path: Path, array: np.ndarray, what: str):
    make_raster(tmp_path / "map.tif", array)
    path = write_points(tmp_path / "p.gpkg", [geo(1.5, 1.5)], fields={"c": [0]})
    expect_error(tmp_path, "INPUT",
                 f"'{tmp_path / 'map.tif'}' has {what}: a class map is a single-band integer raster whose pixel "
                 "values are class codes (e.g. the class map of Model serve, OUTPUT_CLASSES). Give such a raster, or "
                 "convert it first (gdal_translate -b 1 -ot UInt16).",
                 reference=str(path), class_field="c")


def test_neither_or_both_references(tmp_path: Path):
    with pytest.raises(InputError) as error:
        config(tmp_path)
    assert (error.value.parameter, error.value.message) == (
        "REFERENCE", "neither REFERENCE nor REFERENCE_RASTER given: give one reference, either a vector layer "
        "(REFERENCE with CLASS_FIELD) or a label raster on the map's grid (REFERENCE_RASTER).")
    with pytest.raises(InputError) as error:
        config(tmp_path, reference="a.gpkg", class_field="c", reference_raster="b.tif")
    assert (error.value.parameter, error.value.message) == (
        "REFERENCE", "both REFERENCE and REFERENCE_RASTER given: give one reference, either a vector layer "
        "(REFERENCE with CLASS_FIELD) or a label raster (REFERENCE_RASTER).")
    with pytest.raises(InputError, match="no class field given for REFERENCE") as error:
        config(tmp_path, reference="a.gpkg")
    assert error.value.parameter == "CLASS_FIELD"


@pytest.mark.parametrize("parameter", ["CLASS_FIELD", "SPLIT_FIELD"])
def test_an_unknown_field_lists_the_fields(tmp_path: Path, parameter: str):
    class_map(tmp_path / "map.tif")
    path = write_points(tmp_path / "p.gpkg", [geo(1.5, 5.5)], fields={"landcover": ["water"], "split": ["test"]})
    fields = {"class_field": "landcover", "split_field": "split", parameter.lower(): "Nope"}
    expect_error(tmp_path, parameter, "the layer of REFERENCE has no field 'Nope' (fields: landcover, split).",
                 reference=str(path), **fields)


def test_the_worker_command_is_registered_without_tensorflow():
    from otbtf_qgis.core.jobs.commands import COMMANDS

    spec = COMMANDS["accuracyassessment"]
    assert spec.config_class() is AccuracyAssessmentConfig and spec.function() is job.run
    assert not spec.needs_tensorflow
