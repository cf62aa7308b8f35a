from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from otbtf_qgis.core.data import patchesextraction as extraction
from otbtf_qgis.core.errors import CancelledError, InputError, RasterIOError
from otbtf_qgis.core.data.patchesextraction import PatchesExtractionConfig, patches_extraction

from tests.vector_data import srs_of
from tests.vector_data import write_points as make_points
from tests.core.conftest import CancelAfter, encoded_values, make_raster

X0, Y0 = 500000.0, 4500000.0


def gt(spacing: float) -> tuple[float, ...]:
    return (X0, spacing, 0.0, Y0, 0.0, -spacing)


def read_image(path: Path) -> np.ndarray:
    array = gdal.Open(str(path)).ReadAsArray()
    return array[:, :, None] if array.ndim == 2 else np.transpose(array, (1, 2, 0))


def run(tmp_path: Path, sources: list[Path], points: Path, out: str = "out", **kwargs) -> tuple[dict, dict]:
    cfg = PatchesExtractionConfig(sources=tuple(str(s) for s in sources), points=str(points),
                                  output_dir=str(tmp_path / out), **kwargs)
    result = patches_extraction(cfg)
    manifest = json.loads((tmp_path / out / "manifest.json").read_text())
    return result, manifest


def expected_patch(data: np.ndarray, spacing: float, x: float, y: float, size: tuple[int, int]) -> np.ndarray | None:
    """The patch around (x, y), computed independently: pixel = floor of the coordinate, start = pixel - size // 2."""
    col = math.floor((x - X0) / spacing + 1e-9) - size[0] // 2
    row = math.floor((Y0 - y) / spacing + 1e-9) - size[1] // 2
    if col < 0 or row < 0 or col + size[0] > data.shape[1] or row + size[1] > data.shape[0]:
        return None
    return data[row:row + size[1], col:col + size[0]]


def random_points(rng: np.random.Generator, n: int, width: int, height: int, spacing: float) -> list[tuple[float,
                                                                                                             float]]:
    cols = rng.integers(0, width, n) + rng.uniform(0.1, 0.9, n)
    rows = rng.integers(0, height, n) + rng.uniform(0.1, 0.9, n)
    return [(X0 + c * spacing, Y0 - r * spacing) for c, r in zip(cols, rows, strict=True)]


@pytest.mark.parametrize("size", ["5", "4", "5x3", "4x7"])
def test_every_patch_matches_its_point(tmp_path: Path, size: str):
    data = encoded_values(40, 50, 3, "uint16")
    raster = make_raster(tmp_path / "xs.tif", data)
    xy = random_points(np.random.default_rng(1), 120, 50, 40, 10.0)
    points = make_points(tmp_path / "p.gpkg", xy, fields={"id": list(range(100, 220))})
    psize = tuple(int(v) for v in size.split("x")) * (1 if "x" in size else 2)
    result, manifest = run(tmp_path, [raster], points, patch_sizes=size)
    expected = {100 + i: expected_patch(data, 10.0, x, y, psize) for i, (x, y) in enumerate(xy)}
    kept = [pid for pid, patch in expected.items() if patch is not None]
    assert sorted(manifest["point_ids"]) == kept
    assert result["rejected"] == {"no_geometry": 0, "no_class": 0, "outside": 120 - len(kept), "nodata": 0}
    image = read_image(tmp_path / "out" / "xs_patches.tif")
    assert image.shape == (len(kept) * psize[1], psize[0], 3) and image.dtype == np.uint16
    for i, pid in enumerate(manifest["point_ids"]):
        np.testing.assert_array_equal(image[i * psize[1]:(i + 1) * psize[1]], expected[pid])


def test_two_sources_at_10_and_20_metres(tmp_path: Path):
    fine = encoded_values(40, 40, 3, "uint16")
    coarse = encoded_values(20, 20, 2, "float32") + 0.5
    fine_path = make_raster(tmp_path / "fine.tif", fine, geotransform=gt(10.0))
    coarse_path = make_raster(tmp_path / "coarse.tif", coarse, geotransform=gt(20.0))
    xy = random_points(np.random.default_rng(2), 80, 40, 40, 10.0)
    points = make_points(tmp_path / "p.gpkg", xy)
    _, manifest = run(tmp_path, [fine_path, coarse_path], points, patch_sizes="8,4x2", source_names="s10, s20")
    pairs = [(expected_patch(fine, 10.0, x, y, (8, 8)), expected_patch(coarse, 20.0, x, y, (4, 2))) for x, y in xy]
    kept = [i + 1 for i, (a, b) in enumerate(pairs) if a is not None and b is not None]  # FIDs start at 1
    assert sorted(manifest["point_ids"]) == kept and manifest["n_samples"] == len(kept) > 20
    image10 = read_image(tmp_path / "out" / "s10_patches.tif")
    image20 = read_image(tmp_path / "out" / "s20_patches.tif")
    assert image20.dtype == np.float32 and image20.shape == (2 * len(kept), 4, 2)
    for i, pid in enumerate(manifest["point_ids"]):
        np.testing.assert_array_equal(image10[i * 8:(i + 1) * 8], pairs[pid - 1][0])
        np.testing.assert_array_equal(image20[i * 2:(i + 1) * 2], pairs[pid - 1][1])
    assert [(s["name"], s["patch_size"], s["bands"], s["dtype"]) for s in manifest["sources"]] == [
        ("s10", [8, 8], 3, "uint16"), ("s20", [4, 2], 2, "float32")]


def test_complex_sources_are_extracted_too(tmp_path: Path):
    """Complex pixels (e.g. SAR) are written through GDAL, real ones by the striped TIFF writer."""
    data = encoded_values(20, 20, 2, "float32")
    complex_data = (data + 1j * (data + 0.5)).astype(np.complex64)
    raster = make_raster(tmp_path / "sar.tif", complex_data)
    xy = random_points(np.random.default_rng(3), 30, 20, 20, 10.0)
    points = make_points(tmp_path / "p.gpkg", xy)
    _, manifest = run(tmp_path, [raster], points, patch_sizes="4")
    image = read_image(tmp_path / "out" / "xs_patches.tif")
    assert image.dtype == np.complex64 and manifest["sources"][0]["dtype"] == "complex64"
    for i, pid in enumerate(manifest["point_ids"]):
        x, y = xy[pid - 1]
        np.testing.assert_array_equal(image[i * 4:(i + 1) * 4], expected_patch(complex_data, 10.0, x, y, (4, 4)))


def test_nodata_rejection_beside_a_complex_source(tmp_path: Path):
    """With a complex source (written through GDAL, size known first), patches with nodata are found beforehand."""
    data = encoded_values(20, 20, 1, "float32")
    data[8, 8] = data[15, 3] = -1
    complex_data = (data + 1j).astype(np.complex64)
    raster = make_raster(tmp_path / "xs.tif", data, nodata=-1)
    sar = make_raster(tmp_path / "sar.tif", complex_data)
    xy = random_points(np.random.default_rng(4), 40, 20, 20, 10.0)
    points = make_points(tmp_path / "p.gpkg", xy)
    result, manifest = run(tmp_path, [raster, sar], points, patch_sizes="4")
    windows = {i + 1: expected_patch(data, 10.0, x, y, (4, 4)) for i, (x, y) in enumerate(xy)}
    kept = [i for i, w in windows.items() if w is not None and not (w == -1).any()]
    assert sorted(manifest["point_ids"]) == kept and result["rejected"]["nodata"] > 0
    image, sar_image = read_image(tmp_path / "out" / "xs_patches.tif"), read_image(tmp_path / "out" / "xs2_patches.tif")
    assert image.shape[0] == sar_image.shape[0] == 4 * len(kept)
    for i, pid in enumerate(manifest["point_ids"]):
        np.testing.assert_array_equal(image[i * 4:(i + 1) * 4], windows[pid])
        np.testing.assert_array_equal(sar_image[i * 4:(i + 1) * 4], windows[pid] + 1j)


@pytest.mark.parametrize(("dtype", "nodata"), [("int16", -5.0), ("float32", float("nan"))])
def test_nodata_rejection_counts(tmp_path: Path, dtype: str, nodata: float):
    data = encoded_values(30, 30, 2, dtype) + 1
    data[10, 10, 1] = nodata
    data[20, 5, 0] = nodata
    other = np.ones((30, 30, 1), np.uint8)  # no nodata set
    other[3, 3] = 0
    raster = make_raster(tmp_path / "xs.tif", data, nodata=nodata)
    other_path = make_raster(tmp_path / "other.tif", other)
    xy = [(X0 + (c + 0.5) * 10, Y0 - (r + 0.5) * 10) for r in range(2, 29, 3) for c in range(2, 29, 3)]
    points = make_points(tmp_path / "p.gpkg", xy)
    windows = [expected_patch(data, 10.0, x, y, (5, 5)) for x, y in xy]
    n_outside = sum(w is None for w in windows)
    n_nodata = sum(w is not None and bool(((w == nodata) | np.isnan(w)).any()) for w in windows)
    result, manifest = run(tmp_path, [raster, other_path], points, patch_sizes="5")
    assert result["rejected"] == {"no_geometry": 0, "no_class": 0, "outside": n_outside, "nodata": n_nodata}
    assert n_nodata > 0 and manifest["n_samples"] == len(xy) - n_outside - n_nodata
    # NaN is not valid JSON: the manifest says null for a NaN nodata.
    assert manifest["sources"][0]["nodata"] == (None if np.isnan(nodata) else nodata)
    assert manifest["sources"][1]["nodata"] is None
    assert not np.isnan(read_image(tmp_path / "out" / "xs_patches.tif")).any()
    # nodata given per source: none for xs, 0 for the second
    result, _ = run(tmp_path, [raster, other_path], points, out="out2", patch_sizes="5", nodata="none,0")
    windows = [expected_patch(other, 10.0, x, y, (5, 5)) for x, y in xy]
    assert result["rejected"]["nodata"] == sum(w is not None and bool((w == 0).any()) for w in windows) == 4


def test_points_in_wgs84_are_reprojected_to_the_raster_crs(tmp_path: Path):
    data = encoded_values(30, 40, 2, "uint16")
    raster = make_raster(tmp_path / "xs.tif", data)  # UTM 31N
    utm_points = [(X0 + (c + 0.5) * 10, Y0 - (r + 0.5) * 10) for c, r in [(5, 5), (20, 12), (33, 25), (10, 20)]]
    to_wgs84 = osr.CoordinateTransformation(srs_of(32631), srs_of(4326))
    lonlat = [to_wgs84.TransformPoint(x, y)[:2] for x, y in utm_points]
    assert all(abs(lon - 3) < 0.01 and abs(lat - 40.65) < 0.01 for lon, lat in lonlat)
    points = make_points(tmp_path / "p.gpkg", lonlat, epsg=4326)
    _, manifest = run(tmp_path, [raster], points, patch_sizes="6")
    image = read_image(tmp_path / "out" / "xs_patches.tif")
    assert sorted(manifest["point_ids"]) == [1, 2, 3, 4]
    for i, pid in enumerate(manifest["point_ids"]):
        x, y = utm_points[pid - 1]
        np.testing.assert_array_equal(image[i * 6:(i + 1) * 6], expected_patch(data, 10.0, x, y, (6, 6)))


def test_string_classes_are_numbered_alphabetically(tmp_path: Path):
    raster = make_raster(tmp_path / "xs.tif", encoded_values(20, 20, 1, "uint16"))
    xy = [(X0 + (c + 0.5) * 10, Y0 - 95.0) for c in (3, 6, 9, 12, 15)]
    points = make_points(tmp_path / "p.gpkg", xy, fields={"name": ["water", "crop", None, "water", "tree"]})
    result, manifest = run(tmp_path, [raster], points, patch_sizes="3", class_field="name")
    assert manifest["class_mapping"] == {"crop": 0, "tree": 1, "water": 2} == result["class_mapping"]
    assert manifest["labels"] == {"file": "labels.tif", "key": "class", "field": "name", "dtype": "int32"}
    assert manifest["point_ids"] == [1, 2, 4, 5] and manifest["rejected"]["no_class"] == 1  # one row: layer order
    labels = gdal.Open(str(tmp_path / "out" / "labels.tif"))
    assert (labels.RasterXSize, labels.RasterYSize) == (1, 4)
    assert labels.GetRasterBand(1).DataType == gdal.GDT_Int32
    assert labels.ReadAsArray()[:, 0].tolist() == [2, 0, 2, 1]


def test_class_names_recorded_by_selection_are_followed(tmp_path: Path):
    raster = make_raster(tmp_path / "xs.tif", encoded_values(20, 20, 1, "uint16"))
    points = make_points(tmp_path / "p.gpkg", [(X0 + 55, Y0 - 55), (X0 + 105, Y0 - 105)],
                         fields={"name": ["water", "bare"]},
                         metadata={"OTBTF_CLASS_NAMES": json.dumps(["bare", "crop", "water"])})
    _, manifest = run(tmp_path, [raster], points, patch_sizes="3", class_field="name")
    assert manifest["class_mapping"] == {"bare": 0, "crop": 1, "water": 2}
    assert gdal.Open(str(tmp_path / "out" / "labels.tif")).ReadAsArray()[:, 0].tolist() == [2, 0]


def test_integer_classes_and_label_source_metadata(tmp_path: Path):
    raster = make_raster(tmp_path / "xs.tif", encoded_values(20, 20, 1, "uint16"))
    labels = np.full((20, 20), 255, np.uint8)
    labels[5:10, 5:10] = 1
    label_path = make_raster(tmp_path / "labels.tif", labels)
    dataset = gdal.Open(str(label_path), gdal.GA_Update)
    dataset.SetMetadata({"OTBTF_IGNORE_LABEL": "255", "OTBTF_CLASS_NAMES": '["crop", "water"]'})
    dataset = None
    points = make_points(tmp_path / "p.gpkg", [(X0 + 75, Y0 - 75)], fields={"code": [4]})
    _, manifest = run(tmp_path, [raster, label_path], points, patch_sizes="4", source_names="xs,labels",
                      class_field="code")
    assert manifest["ignore_label"] == 255
    assert manifest["class_mapping"] == {"4": 4}  # the point field wins over the label raster's names
    assert manifest["sources"][1]["class_names"] == ["crop", "water"]
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "labels_patches.tif")[:, :, 0], labels[5:9, 5:9])
    _, manifest = run(tmp_path, [raster, label_path], points, out="out2", patch_sizes="4", source_names="xs,labels")
    assert manifest["class_mapping"] == {"crop": 0, "water": 1} and manifest["labels"] is None


@pytest.mark.parametrize(("tiled", "dense", "group_bytes"), [(True, 0.0, 1 << 20), (True, 2.0, 1 << 20),
                                                             (False, 0.0, 1 << 20), (False, 2.0, 1 << 20),
                                                             (True, 0.0, 1)])
def test_block_grouped_reads_give_the_same_patches(tmp_path: Path, monkeypatch, tiled: bool, dense: float,
                                                   group_bytes: int):
    monkeypatch.setattr(extraction, "DENSE_COVERAGE", dense)  # 0: always read chunks; 2: always patch by patch
    monkeypatch.setattr(extraction, "CHUNK_PIXELS", 32)
    monkeypatch.setattr(extraction, "GROUP_BYTES", group_bytes)  # 1: groups of one point
    data = encoded_values(100, 90, 2, "uint16")
    data[50, 50, 0] = 9
    raster = make_raster(tmp_path / "xs.tif", data, tiled=tiled, nodata=9)
    xy = random_points(np.random.default_rng(5), 300, 90, 100, 10.0)
    points = make_points(tmp_path / "p.gpkg", xy)
    result, manifest = run(tmp_path, [raster], points, patch_sizes="7x6")
    windows = {i + 1: expected_patch(data, 10.0, x, y, (7, 6)) for i, (x, y) in enumerate(xy)}
    kept = [i for i, w in windows.items() if w is not None and not (w == 9).any()]
    assert sorted(manifest["point_ids"]) == kept and result["rejected"]["nodata"] > 0
    image = read_image(tmp_path / "out" / "xs_patches.tif")
    for i, pid in enumerate(manifest["point_ids"]):
        np.testing.assert_array_equal(image[i * 6:(i + 1) * 6], windows[pid])


def test_manifest_follows_the_format(tmp_path: Path):
    raster = make_raster(tmp_path / "xs.tif", encoded_values(20, 20, 4, "uint16"))
    points = make_points(tmp_path / "p.gpkg", [(X0 + 105, Y0 - 105)], fields={"id": [42]})
    _, manifest = run(tmp_path, [raster], points, patch_sizes="8")
    assert manifest == {
        "format": "otbtf_qgis-patches/1",
        "sources": [{"name": "xs", "key": "xs", "path": str(raster), "patch_size": [8, 8], "bands": 4,
                     "dtype": "uint16", "nodata": None, "file": "xs_patches.tif"}],
        "labels": None, "class_mapping": {}, "ignore_label": None, "n_samples": 1, "points": str(points),
        "point_ids": [42], "rejected": {"no_geometry": 0, "no_class": 0, "outside": 0, "nodata": 0},
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "xs_patches.tif"]


def test_bad_inputs_give_clear_errors_and_write_nothing(tmp_path: Path):
    raster = make_raster(tmp_path / "xs.tif", encoded_values(20, 20, 1, "uint16"))
    inside = make_points(tmp_path / "in.gpkg", [(X0 + 105, Y0 - 105)], fields={"cls": ["a"]})
    cases = [
        ([raster], make_points(tmp_path / "empty.gpkg", []), {}, InputError, "POINTS", "has no point"),
        ([raster], make_points(tmp_path / "far.gpkg", [(X0 - 5000, Y0 + 5000)]), {}, InputError, "POINTS",
         "none of the 1 points falls on the source 'xs'"),
        ([tmp_path / "in.gpkg"], inside, {}, RasterIOError, "SOURCES", "is not a raster GDAL can read"),
        ([raster], inside, {"class_field": "klass"}, InputError, "FIELD", "no field 'klass'"),
        ([raster], inside, {"patch_sizes": "30"}, InputError, "POINTS",
         r"no sample kept: all 1 points were rejected \(1 with a patch leaving a source\)"),
        ([raster, raster], inside, {"source_names": "xs,xs"}, InputError, "SOURCE_NAMES", "xs is repeated"),
        ([raster], inside, {"source_names": "class", "class_field": "cls"}, InputError, "SOURCE_NAMES",
         "key of the class labels"),
        ([raster], inside, {"source_names": "2x"}, InputError, "SOURCE_NAMES", "not a valid source name"),
    ]
    for sources, points, kwargs, error_type, parameter, message in cases:
        with pytest.raises(error_type, match=message) as error:
            run(tmp_path, sources, points, **kwargs)
        assert error.value.parameter == parameter
        assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_output_folder_overwrite_rule(tmp_path: Path):
    raster = make_raster(tmp_path / "xs.tif", encoded_values(20, 20, 1, "uint16"))
    points = make_points(tmp_path / "p.gpkg", [(X0 + 105, Y0 - 105), (X0 + 55, Y0 - 55)])
    foreign = tmp_path / "out"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="already holds files that are not an otbtf_qgis output") as error:
        run(tmp_path, [raster], points, patch_sizes="3")
    assert error.value.parameter == "OUTPUT_DIR" and (foreign / "notes.txt").read_text() == "mine"
    (foreign / "notes.txt").unlink()
    _, first = run(tmp_path, [raster], points, patch_sizes="3")  # empty folder: fine
    _, second = run(tmp_path, [raster], points, patch_sizes="5")  # our previous output: replaced
    assert first["sources"][0]["patch_size"] == [3, 3] and second["sources"][0]["patch_size"] == [5, 5]
    assert read_image(foreign / "xs_patches.tif").shape == (10, 5, 1)


def test_cancel_leaves_nothing(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(extraction, "GROUP_BYTES", 1)  # one group per point: many cancel checks
    raster = make_raster(tmp_path / "xs.tif", encoded_values(40, 40, 1, "uint16"), nodata=65535)
    points = make_points(tmp_path / "p.gpkg", random_points(np.random.default_rng(0), 30, 40, 40, 10.0))
    for calls in (2, 20):  # at the first groups, half way through the writing
        with pytest.raises(CancelledError):
            patches_extraction(PatchesExtractionConfig(sources=(str(raster),), points=str(points),
                                                       output_dir=str(tmp_path / "out"), patch_sizes="4"),
                               CancelAfter(calls))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["p.gpkg", "xs.tif"]
