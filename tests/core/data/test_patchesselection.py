from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from otbtf_qgis.core.data import patchesselection as sampling
from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.data.patchesselection import PatchesSelectionConfig, patches_selection

from tests.vector_data import layer_metadata, read_layer, rectangle, write_layer
from tests.core.conftest import encoded_values, make_raster

X0, Y0, SPACING = 500000.0, 4500000.0, 10.0


def geo(u: float, v: float) -> tuple[float, float]:
    return X0 + u * SPACING, Y0 - v * SPACING


def config(tmp_path: Path, raster: Path, **kwargs) -> PatchesSelectionConfig:
    values = {"input": str(raster), "output_train": str(tmp_path / "train.gpkg"), "strategy": "all"}
    values.update(kwargs)
    return PatchesSelectionConfig(**values)


def positions(path: Path) -> dict[int, tuple[float, float]]:
    return {row["id"]: (row["x"], row["y"]) for row in read_layer(path)}


@pytest.mark.parametrize("size", [5, 4])
def test_grid_positions_are_patch_centres(tmp_path: Path, size: int):
    raster = make_raster(tmp_path / "in.tif", encoded_values(20, 30, 2))
    result = patches_selection(config(tmp_path, raster, patch_size=str(size), step="4", offset="1x2"))
    cols = list(range(1, 30 - size + 1, 4))
    rows = list(range(2, 20 - size + 1, 4))
    expected = {j * len(cols) + i: geo(c + size / 2, r + size / 2) for j, r in enumerate(rows)
                for i, c in enumerate(cols)}
    assert positions(tmp_path / "train.gpkg") == expected
    assert result["n_candidates"] == len(expected) == result["counts"]["train"]
    # odd sizes: pixel centres (x ends in 5); even sizes: pixel corners (x ends in 0)
    assert {round(x) % 10 for x, _ in expected.values()} == ({5} if size % 2 else {0})


def test_non_square_patches_and_steps(tmp_path: Path):
    raster = make_raster(tmp_path / "in.tif", encoded_values(12, 20, 1))
    patches_selection(config(tmp_path, raster, patch_size="6x4", step="7x3"))
    expected = {j * 3 + i: geo(c + 3, r + 2) for j, r in enumerate([0, 3, 6]) for i, c in enumerate([0, 7, 14])}
    assert positions(tmp_path / "train.gpkg") == expected


def brute_force_valid(invalid: np.ndarray, size: int, step: int) -> set[int]:
    height, width = invalid.shape
    cols, rows = range(0, width - size + 1, step), range(0, height - size + 1, step)
    return {j * len(cols) + i for j, r in enumerate(rows) for i, c in enumerate(cols)
            if not invalid[r:r + size, c:c + size].any()}


@pytest.mark.parametrize("nodata", [-9.0, float("nan")])
@pytest.mark.parametrize("strip_bytes", [64 << 20, 1])
def test_nodata_rejection_matches_brute_force(tmp_path: Path, monkeypatch, strip_bytes: int, nodata: float):
    monkeypatch.setattr(sampling, "STRIP_BYTES", strip_bytes)  # 1: one grid row per strip
    data = encoded_values(40, 50, 3) + 1  # float32
    rng = np.random.default_rng(3)
    for _ in range(12):
        r, c, b = rng.integers(0, 40), rng.integers(0, 50), rng.integers(0, 3)
        data[r, c, b] = nodata  # one band at nodata is enough to reject
    raster = make_raster(tmp_path / "in.tif", data, nodata=nodata)
    result = patches_selection(config(tmp_path, raster, patch_size="6", step="3"))
    expected = brute_force_valid(((data == nodata) | np.isnan(data)).any(axis=2), 6, 3)
    assert set(positions(tmp_path / "train.gpkg")) == expected
    assert result["rejected"]["nodata"] == result["n_candidates"] - len(expected) > 0


def test_mask_and_nodata_override(tmp_path: Path):
    data = encoded_values(20, 20, 1)
    data[0, 0, 0] = 0  # value 0 (pixel 0,0 encodes 0): only nodata when NODATA=0 is given
    raster = make_raster(tmp_path / "in.tif", data)
    mask = np.ones((20, 20), np.uint8)
    mask[15, 15] = 0
    mask_path = make_raster(tmp_path / "mask.tif", mask)
    patches_selection(config(tmp_path, raster, patch_size="5", step="5", mask=str(mask_path)))
    assert set(positions(tmp_path / "train.gpkg")) == set(range(16)) - {15}
    patches_selection(config(tmp_path, raster, patch_size="5", step="5", mask=str(mask_path), nodata=0.0))
    assert set(positions(tmp_path / "train.gpkg")) == set(range(16)) - {0, 15}


def test_split_proportions_and_seed(tmp_path: Path):
    raster = make_raster(tmp_path / "in.tif", encoded_values(40, 28, 1))
    outputs = {"output_valid": str(tmp_path / "valid.gpkg"), "output_test": str(tmp_path / "test.gpkg")}
    result = patches_selection(config(tmp_path, raster, patch_size="4", strategy="split", train_proportion=0.5,
                                      valid_proportion=0.25, test_proportion=0.25, seed=7, **outputs))
    assert result["counts"] == {"train": 35, "valid": 18, "test": 17}
    sets = [set(positions(tmp_path / f"{s}.gpkg")) for s in ("train", "valid", "test")]
    assert set().union(*sets) == set(range(70)) and sum(map(len, sets)) == 70
    again = patches_selection(config(tmp_path, raster, patch_size="4", strategy="split", train_proportion=0.5,
                                     valid_proportion=0.25, test_proportion=0.25, seed=7, **outputs))
    assert again["counts"] == result["counts"] and set(positions(tmp_path / "train.gpkg")) == sets[0]
    patches_selection(config(tmp_path, raster, patch_size="4", strategy="split", train_proportion=0.5,
                             valid_proportion=0.25, test_proportion=0.25, seed=8, **outputs))
    assert set(positions(tmp_path / "train.gpkg")) != sets[0]


def test_chessboard_alternates_cells(tmp_path: Path):
    raster = make_raster(tmp_path / "in.tif", encoded_values(12, 16, 1))
    result = patches_selection(config(tmp_path, raster, patch_size="4", strategy="chessboard",
                                      output_valid=str(tmp_path / "valid.gpkg")))
    train, valid = set(positions(tmp_path / "train.gpkg")), set(positions(tmp_path / "valid.gpkg"))
    assert train == {i for i in range(12) if (i // 4 + i % 4) % 2 == 0} and valid == set(range(12)) - train
    assert result["counts"] == {"train": 6, "valid": 6, "test": 0}


def polygons_layer(tmp_path: Path, boxes: list[tuple[float, float, float, float]], classes: list) -> Path:
    """Rectangles given in pixel coordinates (u0, v0, u1, v1)."""
    wkts = [rectangle(*geo(u0, v1), *geo(u1, v0)) for u0, v0, u1, v1 in boxes]
    return write_layer(tmp_path / "poly.gpkg", wkts, fields={"cls": classes}, geometry_type=3)


def test_polygons_keep_positions_whose_centre_is_inside(tmp_path: Path):
    raster = make_raster(tmp_path / "in.tif", encoded_values(40, 40, 1))
    # 8-pixel patches every 8 pixels: centres at 4, 12, 20, 28, 36.
    polygons = polygons_layer(tmp_path, [(10, 10, 14, 14),   # holds centre (12, 12) only: kept
                                         (13, 0, 19, 40),    # overlaps patches but holds no centre
                                         (26, 2, 38, 6)],    # holds centres (28, 4) and (36, 4)
                              ["water", "crop", "bare"])
    labels_path = tmp_path / "labels.tif"
    result = patches_selection(config(tmp_path, raster, patch_size="8", polygons=str(polygons), class_field="cls",
                                      output_labels=str(labels_path)))
    rows = {row["id"]: row for row in read_layer(tmp_path / "train.gpkg")}
    assert {i: r["cls"] for i, r in rows.items()} == {6: "water", 3: "bare", 4: "bare"}
    assert (rows[6]["x"], rows[6]["y"]) == geo(12, 12)
    assert result["rejected"] == {"nodata": 0, "outside_polygons": 22}
    assert result["class_mapping"] == {"bare": 0, "crop": 1, "water": 2}
    assert json.loads(layer_metadata(tmp_path / "train.gpkg")["OTBTF_CLASS_NAMES"]) == ["bare", "crop", "water"]
    # The label raster: INPUT's grid, class index where the pixel centre is inside, 255 elsewhere, no nodata.
    dataset = gdal.Open(str(labels_path))
    assert (dataset.RasterXSize, dataset.RasterYSize) == (40, 40)
    assert dataset.GetGeoTransform() == (X0, SPACING, 0.0, Y0, 0.0, -SPACING)
    assert dataset.GetRasterBand(1).DataType == gdal.GDT_Byte
    assert dataset.GetRasterBand(1).GetNoDataValue() is None
    assert dataset.GetMetadataItem("OTBTF_IGNORE_LABEL") == "255"
    assert json.loads(dataset.GetMetadataItem("OTBTF_CLASS_NAMES")) == ["bare", "crop", "water"]
    expected = np.full((40, 40), 255, np.uint8)
    expected[10:14, 10:14] = 2
    expected[0:40, 13:19] = 1
    expected[2:6, 26:38] = 0
    np.testing.assert_array_equal(dataset.ReadAsArray(), expected)


@pytest.mark.parametrize("strip_bytes", [64 << 20, 1])
def test_nodata_is_checked_only_inside_the_polygons(tmp_path: Path, monkeypatch, strip_bytes: int):
    """Outside the polygons first; nodata counted among the positions inside; only their rows and columns read."""
    monkeypatch.setattr(sampling, "STRIP_BYTES", strip_bytes)  # 1: one grid row per strip
    data = encoded_values(40, 40, 1) + 1
    data[21, 21] = data[2, 2] = data[30, 5] = -9  # inside, outside, outside the polygon
    raster = make_raster(tmp_path / "in.tif", data, nodata=-9)
    # 4-pixel patches every 4 pixels: centres at 2, 6, ..., 38; the box holds centres 18, 22 and 26 each way.
    polygons = polygons_layer(tmp_path, [(17, 17, 27, 27)], ["a"])
    windows = []
    read_window = sampling.read_window

    def recording(dataset, window, **kwargs):
        windows.append(window)
        return read_window(dataset, window, **kwargs)

    monkeypatch.setattr(sampling, "read_window", recording)
    result = patches_selection(config(tmp_path, raster, patch_size="4", polygons=str(polygons)))
    inside = {row * 10 + col for row in (4, 5, 6) for col in (4, 5, 6)}
    assert set(positions(tmp_path / "train.gpkg")) == inside - {5 * 10 + 5}
    assert result["rejected"] == {"nodata": 1, "outside_polygons": 100 - 9}
    assert min(w.row_off for w in windows) == 16 and max(w.row_off + w.height for w in windows) == 28
    assert min(w.col_off for w in windows) == 16 and max(w.col_off + w.width for w in windows) == 28


def test_integer_classes_keep_their_value(tmp_path: Path):
    raster = make_raster(tmp_path / "in.tif", encoded_values(16, 16, 1))
    polygons = polygons_layer(tmp_path, [(0, 0, 8, 8), (8, 8, 16, 16)], [7, 3])
    patches_selection(config(tmp_path, raster, patch_size="4", polygons=str(polygons), class_field="cls",
                             output_labels=str(tmp_path / "labels.tif")))
    rows = read_layer(tmp_path / "train.gpkg")
    assert sorted((r["id"], r["cls"]) for r in rows) == [(0, 7), (1, 7), (4, 7), (5, 7), (10, 3), (11, 3), (14, 3),
                                                        (15, 3)]
    dataset = gdal.Open(str(tmp_path / "labels.tif"))
    assert np.unique(dataset.ReadAsArray()).tolist() == [3, 7, 255]
    assert json.loads(dataset.GetMetadataItem("OTBTF_CLASS_NAMES")) == [str(i) for i in range(8)]


def test_errors_are_clear_and_write_nothing(tmp_path: Path):
    data = np.full((20, 20, 1), -1, np.float32)
    raster = make_raster(tmp_path / "in.tif", data, nodata=-1)
    with pytest.raises(InputError, match=r"no position kept out of 16 \(16 nodata\)"):
        patches_selection(config(tmp_path, raster, patch_size="5"))
    good = make_raster(tmp_path / "good.tif", encoded_values(20, 20, 1))
    far = write_layer(tmp_path / "far.gpkg", [rectangle(0, 0, 10, 10)], fields={"cls": ["a"]}, geometry_type=3)
    with pytest.raises(InputError, match=r"16 outside polygons\)\. The polygons may not overlap INPUT"):
        patches_selection(config(tmp_path, good, patch_size="5", polygons=str(far), class_field="cls"))
    with pytest.raises(InputError, match="no field 'nope'") as error:
        patches_selection(config(tmp_path, good, patch_size="5", polygons=str(far), class_field="nope"))
    assert error.value.parameter == "CLASS_FIELD"
    with pytest.raises(InputError, match="no output is given") as error:
        patches_selection(config(tmp_path, good, patch_size="5", strategy="split"))
    assert error.value.parameter == "OUTPUT_VALID"
    with pytest.raises(InputError, match="no 30x30 patch fits"):
        patches_selection(config(tmp_path, good, patch_size="30"))
    assert not (tmp_path / "train.gpkg").exists()


def grid_of_boxes(n_classes: int, per_class: int, size: int = 8) -> tuple[list, list]:
    """``per_class`` boxes of ``size`` pixels per class, in rows of one class, 4 pixels apart.

    Their edges are on odd pixel coordinates: no patch centre (even, with 4-pixel patches every 2) lies on an edge.
    """
    boxes, classes = [], []
    for c in range(n_classes):
        for k in range(per_class):
            u0, v0 = 1 + k * (size + 4), 1 + c * (size + 4)
            boxes.append((u0, v0, u0 + size, v0 + size))
            classes.append(["crop", "tree", "water"][c])
    return boxes, classes


def polygon_of_point(x: float, y: float, boxes: list) -> int:
    u, v = (x - X0) / SPACING, (Y0 - y) / SPACING
    return next(i for i, (u0, v0, u1, v1) in enumerate(boxes) if u0 <= u < u1 and v0 <= v < v1)


def test_polygons_strategy_keeps_whole_polygons_in_one_set(tmp_path: Path):
    boxes, classes = grid_of_boxes(3, 6)
    raster = make_raster(tmp_path / "in.tif", encoded_values(40, 76, 1))
    polygons = polygons_layer(tmp_path, boxes, classes)
    outputs = {name: str(tmp_path / f"{name}.gpkg") for name in ("valid", "test")}
    labels = {name: tmp_path / f"{name}_labels.tif" for name in ("train", "valid", "test")}
    result = patches_selection(config(
        tmp_path, raster, patch_size="4", step="2", strategy="polygons", polygons=str(polygons), class_field="cls",
        train_proportion=0.6, valid_proportion=0.2, test_proportion=0.2, seed=3, output_valid=outputs["valid"],
        output_test=outputs["test"], output_labels=str(labels["train"]), output_valid_labels=str(labels["valid"]),
        output_test_labels=str(labels["test"]), output_polygons=str(tmp_path / "split.gpkg")))
    # 6 polygons per class: max(1, round(1.2)) = 1 valid and 1 test each, 4 train.
    assert result["polygons_per_set"] == {"train": 12, "valid": 3, "test": 3}
    split_rows = read_layer_polygons(tmp_path / "split.gpkg")
    assert [row["cls"] for row in split_rows] == classes
    polygon_set = [row["split"] for row in split_rows]
    for name in ("train", "valid", "test"):
        assert {polygon_set[i] for i in range(18) if classes[i] == "water"} == {"train", "valid", "test"}
        points = read_layer(tmp_path / f"{name}.gpkg")
        owners = {polygon_of_point(p["x"], p["y"], boxes) for p in points}
        assert owners == {i for i, s in enumerate(polygon_set) if s == name}  # every polygon of the set, no other
        assert {p["cls"] for p in points} == {"crop", "tree", "water"}
        # Each set's label raster holds its own polygons only.
        values = gdal.Open(str(labels[name])).ReadAsArray()
        for index, (u0, v0, u1, v1) in enumerate(boxes):
            expected = ["crop", "tree", "water"].index(classes[index]) if polygon_set[index] == name else 255
            assert (values[v0:v1, u0:u1] == expected).all(), (name, index)
    assert result["positions_per_class"]["valid"] == {"crop": 16, "tree": 16, "water": 16}  # 4x4 centres each


def read_layer_polygons(path: Path) -> list[dict]:
    from osgeo import ogr

    dataset = ogr.Open(str(path))
    return [{name: feature.GetField(name) for name in feature.keys()} for feature in dataset.GetLayer(0)]


def test_split_field_and_class_cap(tmp_path: Path):
    boxes, classes = grid_of_boxes(2, 3)
    raster = make_raster(tmp_path / "in.tif", encoded_values(40, 40, 1))
    splits = ["train", "train", "valid", "Test ", "train", "valid"]
    polygons = write_layer(tmp_path / "poly.gpkg", [rectangle(*geo(u0, v1), *geo(u1, v0)) for u0, v0, u1, v1 in boxes],
                           fields={"cls": classes, "set": splits}, geometry_type=3)
    result = patches_selection(config(
        tmp_path, raster, patch_size="4", step="2", strategy="polygons", polygons=str(polygons), class_field="cls",
        split_field="set", max_per_class=5, output_valid=str(tmp_path / "valid.gpkg"),
        output_test=str(tmp_path / "test.gpkg")))
    assert result["polygons_per_set"] == {"train": 3, "valid": 2, "test": 1}
    # 16 centres per polygon; train holds 2 crop and 1 tree polygons, capped at 5 per class.
    assert result["positions_per_class"] == {"train": {"crop": 5, "tree": 5}, "valid": {"crop": 5, "tree": 5},
                                             "test": {"tree": 5}}
    assert result["rejected"]["over_class_cap"] == (32 - 5) + 4 * (16 - 5)
    owners = {polygon_of_point(p["x"], p["y"], boxes) for p in read_layer(tmp_path / "test.gpkg")}
    assert owners == {3}


def test_balanced_strategy_balances_the_majority_labels(tmp_path: Path):
    raster = make_raster(tmp_path / "in.tif", encoded_values(16, 32, 1))
    label_values = np.full((16, 32), 255, np.uint8)
    label_values[:, :20] = 0  # class 0 over 20 columns, class 1 over 8, unlabelled 4
    label_values[:, 20:28] = 1
    label_values[0:2, 0:4] = 1  # a minority inside the first patch: it stays class 0
    labels_raster = make_raster(tmp_path / "labels.tif", label_values)
    result = patches_selection(config(tmp_path, raster, patch_size="4", strategy="balanced",
                                      labels=str(labels_raster), output_valid=str(tmp_path / "valid.gpkg")))
    # 8 x 4 patches: columns 0-4 class 0, 5-6 class 1, 7 unlabelled; chessboard halves, then as many of each class.
    assert result["rejected"]["unlabelled"] == 4
    for name in ("train", "valid"):
        counts = np.bincount([p["class"] for p in read_layer(tmp_path / f"{name}.gpkg")], minlength=2)
        assert counts.tolist() == [4, 4]
    assert result["counts"] == {"train": 8, "valid": 8, "test": 0}


def test_errors_of_the_split_settings(tmp_path: Path):
    raster = make_raster(tmp_path / "in.tif", encoded_values(40, 40, 1))
    boxes, classes = grid_of_boxes(2, 2)
    polygons = polygons_layer(tmp_path, boxes, classes)
    cases = [
        ({"strategy": "polygons"}, "STRATEGY", "the polygons strategy shares whole polygons"),
        ({"strategy": "split", "polygons": str(polygons), "split_field": "cls"}, "SPLIT_FIELD",
         "set STRATEGY to polygons \\(it is split\\)"),
        ({"strategy": "split", "polygons": str(polygons), "output_valid_labels": "v.tif"}, "OUTPUT_VALID_LABELS",
         "a label raster per set needs STRATEGY=polygons"),
        ({"strategy": "balanced"}, "STRATEGY", "the balanced strategy needs classes"),
        ({"labels": str(raster)}, "LABELS", "LABELS is the label raster of the balanced strategy"),
        ({"max_per_class": -2}, "MAX_PER_CLASS", "must be 0 \\(no cap\\) or a number of positions, got -2"),
        ({"max_per_class": 3}, "MAX_PER_CLASS", "the cap is per class: give POLYGONS with a CLASS_FIELD"),
        ({"strategy": "polygons", "polygons": str(polygons), "class_field": "cls"}, "POLYGONS",
         "class 'crop' has 2 polygon\\(s\\): a whole polygon goes to one set, so these proportions would leave "
         "'crop' no test polygon"),
        ({"strategy": "polygons", "polygons": str(polygons), "class_field": "cls", "split_field": "cls"},
         "SPLIT_FIELD", "every polygon needs 'train', 'valid' or 'test' in this field; found 'crop' \\(2\\)"),
        ({"strategy": "polygons", "polygons": str(polygons), "split_field": "nope"}, "SPLIT_FIELD", "no field 'nope'"),
    ]
    for settings, parameter, message in cases:
        with pytest.raises(InputError, match=message) as error:
            patches_selection(config(tmp_path, raster, patch_size="4", output_valid=str(tmp_path / "v.gpkg"),
                                     output_test=str(tmp_path / "t.gpkg"), **settings))
        assert error.value.parameter == parameter, settings
    small = make_raster(tmp_path / "small.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="the label raster is 8x8 pixels but INPUT is 40x40") as error:
        patches_selection(config(tmp_path, raster, patch_size="4", strategy="balanced", labels=str(small)))
    assert error.value.parameter == "LABELS"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "poly.gpkg", "small.tif"]
