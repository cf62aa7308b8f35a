"""The main job end to end on a real Landsat 8 scene, through ``qgis_process``, with an honest accuracy.

Chain: split the polygons of ``demo/labels.gpkg`` into train, valid and test sets by whole
polygons and sample positions inside them → patches → TFRecords → train the FCNN on the
CPU (the epoch of the best validation loss is kept) → serve the model over the whole scene
→ assess the class map on the test polygons, which neither training nor model selection
saw → report: confusion matrix, overall accuracy with its interval, kappa, per-class
F1, area estimates, and the scene and the map side by side on three zooms.

Run by ``make demo``; ``--window`` and ``--epochs`` make a small, fast variant for tests.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from osgeo import gdal, ogr

gdal.UseExceptions()
ogr.UseExceptions()

ROOT = Path(__file__).resolve().parent.parent
QGIS_PROCESS = ROOT / "scripts" / "qgis_process"
LABELS = ROOT / "demo" / "labels.gpkg"
PATCH_SIZE = 32
STEPS = 7
#: The zooms of the side-by-side quicklook: title → (first row, first column, size) in the whole scene's pixels.
ZOOMS = {"City (Ciudad del Este)": (1250, 450, 500), "Lake shore": (400, 900, 500),
         "Farmland": (100, 0, 500)}


class Demo:
    """Runs the steps, times them and keeps what the report needs."""

    def __init__(self, qgis_process: Path, verbose: bool) -> None:
        self.qgis_process = qgis_process
        self.verbose = verbose
        self.timings: dict[str, float] = {}

    def run(self, step: int, title: str, algorithm: str, **params: Any) -> dict[str, str]:
        """Run one algorithm through qgis_process, streaming its progress; return its results.

        Stops the demo when the algorithm fails, showing its last messages.
        """
        print(f"\n[{step}/{STEPS}] {title}", flush=True)
        args = [str(self.qgis_process), "run", algorithm, "--"]
        for key, value in params.items():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                args.append(f"{key}={item}")
        start = time.monotonic()
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace")
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if self.verbose or _is_progress(line):
                sys.stdout.write(line)
                sys.stdout.flush()
        process.wait()
        elapsed = time.monotonic() - start
        self.timings[title] = elapsed
        if process.returncode != 0:
            sys.stdout.write("".join(lines[-40:]))
            raise SystemExit(f"{algorithm} failed (exit code {process.returncode}); see the messages above.")
        print(f"    done in {elapsed:.1f} s", flush=True)
        return parse_results(lines)


def parse_results(lines: list[str]) -> dict[str, str]:
    """The ``KEY:<tab>value`` lines that qgis_process prints after ``Results``."""
    results: dict[str, str] = {}
    started = False
    for line in lines:
        if line.strip() == "Results":
            started = True
        elif started and ":\t" in line:
            key, value = line.rstrip("\n").split(":\t", 1)
            results[key.strip()] = value
    return results


def _is_progress(line: str) -> bool:
    text = line.strip()
    return (text.startswith(("0...", "10...")) or (text[:1].isdigit() and "..." in text)
            or text.startswith(("Epoch", "epoch", "Kept", "kept", "Tiles", "tiles", "Output", "Training", "Samples",
                                "Overall", "test:", "Exported", "exported", "Polygons", "polygons")))


def cut_window(scene: Path, labels: Path, window: tuple[int, int, int, int], work: Path) -> tuple[Path, Path]:
    """Cut the scene to ``(column, row, width, height)`` and the labels to the same extent (fast variant)."""
    col, row, width, height = window
    dataset = gdal.Open(str(scene))
    if col < 0 or row < 0 or width < 1 or height < 1 or col + width > dataset.RasterXSize \
            or row + height > dataset.RasterYSize:
        raise SystemExit(f"--window {','.join(map(str, window))} is not inside the scene "
                         f"({dataset.RasterXSize} × {dataset.RasterYSize} pixels).")
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    cut_scene, cut_labels = work / "scene_window.tif", work / "labels_window.gpkg"
    for path in (cut_scene, cut_labels):
        path.unlink(missing_ok=True)
    gdal.Translate(str(cut_scene), dataset, srcWin=[col, row, width, height],
                   creationOptions=["TILED=YES", "COMPRESS=ZSTD"])
    bounds = [x0 + col * dx, y0 + (row + height) * dy, x0 + (col + width) * dx, y0 + row * dy]
    gdal.VectorTranslate(str(cut_labels), str(labels), format="GPKG", spatFilter=bounds,
                         geometryType="PROMOTE_TO_MULTI", options=["-clipsrc", *map(str, bounds)])
    return cut_scene, cut_labels


def stretch(bands: npt.NDArray[Any], limits: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
    """Linear stretch per band to uint8 between ``limits`` (``(bands, 2)``; default: 2–98 % of the non-zero)."""
    if limits is None:
        limits = stretch_limits(bands)
    out = np.zeros(bands.shape, np.uint8)
    for index in range(bands.shape[2]):
        low, high = limits[index]
        band = bands[:, :, index].astype(np.float64)
        out[:, :, index] = np.clip((band - low) / max(high - low, 1e-9) * 255, 0, 255).astype(np.uint8)
    return out


def stretch_limits(bands: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The 2 and 98 % percentiles of each band's non-zero (valid) values."""
    limits = np.zeros((bands.shape[2], 2))
    for index in range(bands.shape[2]):
        valid = bands[:, :, index][bands[:, :, index] > 0]
        limits[index] = np.percentile(valid, (2, 98)) if valid.size else (0, 1)
    return limits


def read_rgb(path: Path, bands: tuple[int, int, int], max_size: int = 1200,
             window: tuple[int, int, int, int] | None = None) -> npt.NDArray[Any]:
    """Three bands (of ``window`` = column, row, width, height), decimated so the longer side is ``max_size``."""
    dataset = gdal.Open(str(path))
    col, row, width, height = window or (0, 0, dataset.RasterXSize, dataset.RasterYSize)
    factor = max(1, int(np.ceil(max(width, height) / max_size)))
    planes = [dataset.GetRasterBand(b).ReadAsArray(col, row, width, height, buf_xsize=width // factor,
                                                   buf_ysize=height // factor) for b in bands]
    return np.dstack(planes)


# NamedTuples, not dataclasses: tests load this script without registering it as a module.
class ClassMap(NamedTuple):
    """The served class map, read once for the quicklooks and the report."""

    values: npt.NDArray[Any]
    #: RGB per class value (0..255), white for nodata, grey where the colour table has no entry.
    colours: npt.NDArray[np.uint8]
    geotransform: tuple[float, ...]
    #: The value of the pixels that were nodata in the scene (``None``: no nodata).
    nodata: int | None


def read_class_map(path: Path) -> ClassMap:
    """Read the class map's pixels, colour table and georeferencing."""
    dataset = gdal.Open(str(path))  # keep the dataset alive while its band is read
    band = dataset.GetRasterBand(1)
    table = band.GetRasterColorTable()
    colours = np.array([table.GetColorEntry(i)[:3] if table and i < table.GetCount() else (128, 128, 128)
                        for i in range(256)], np.uint8)
    nodata = band.GetNoDataValue()
    if nodata is not None:
        colours[int(nodata)] = (255, 255, 255)
    return ClassMap(band.ReadAsArray(), colours, tuple(dataset.GetGeoTransform()),
                    None if nodata is None else int(nodata))


def on_scene_grid(class_map: ClassMap, scene: Path) -> npt.NDArray[Any]:
    """The class map's values placed on the scene's pixel grid (nodata, or 255, where the map has none)."""
    dataset = gdal.Open(str(scene))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    col = round((class_map.geotransform[0] - x0) / dx)
    row = round((class_map.geotransform[3] - y0) / dy)
    fill = 255 if class_map.nodata is None else class_map.nodata
    grid = np.full((dataset.RasterYSize, dataset.RasterXSize), fill, class_map.values.dtype)
    height, width = class_map.values.shape
    grid[row:row + height, col:col + width] = class_map.values[:grid.shape[0] - row, :grid.shape[1] - col]
    return grid


def test_outlines(polygons: Path, scene: Path) -> list[npt.NDArray[Any]]:
    """The rings of the test polygons, in the scene's (column, row) pixel coordinates."""
    dataset = gdal.Open(str(scene))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    source = ogr.Open(str(polygons))  # keep the data source alive while its layer is used
    layer = source.GetLayer(0)
    layer.SetAttributeFilter("split = 'test'")
    rings = []
    for feature in layer:
        geometry = feature.GetGeometryRef()
        parts = [geometry.GetGeometryRef(i) for i in range(geometry.GetGeometryCount())] \
            if geometry.GetGeometryType() in (ogr.wkbMultiPolygon, ogr.wkbMultiPolygon25D) else [geometry]
        for part in parts:
            ring = part.GetGeometryRef(0)
            points = np.array([ring.GetPoint_2D(i) for i in range(ring.GetPointCount())])
            rings.append(np.column_stack([(points[:, 0] - x0) / dx, (points[:, 1] - y0) / dy]))
    return rings


def zoom_windows(scene: Path, offset: tuple[int, int]) -> dict[str, tuple[int, int, int]]:
    """The zooms that fit the scene (``offset``: its first column and row in the whole scene); else all of it."""
    dataset = gdal.Open(str(scene))
    width, height = dataset.RasterXSize, dataset.RasterYSize
    fitting = {}
    for title, (row, col, size) in ZOOMS.items():
        row, col = row - offset[1], col - offset[0]
        if row >= 0 and col >= 0 and row + size <= height and col + size <= width:
            fitting[title] = (row, col, size)
    return fitting or {"Whole scene": (0, 0, min(width, height))}


def quicklooks(scene: Path, class_map: ClassMap, names: list[str], model_dir: Path, polygons: Path,
               offset: tuple[int, int], output: Path) -> list[Path]:
    """True-colour scene, class map with legend, the zooms side by side, training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    written = []
    whole = read_rgb(scene, (3, 2, 1))
    limits = stretch_limits(whole)
    truecolor = output / "scene_truecolor.png"
    plt.imsave(truecolor, stretch(whole, limits))
    written.append(truecolor)

    values, colours = class_map.values, class_map.colours
    valid = values if class_map.nodata is None else values[values != class_map.nodata]
    n_classes = max(len(names), int(valid.max()) + 1 if valid.size else 0)
    handles = [Patch(color=colours[i] / 255, label=names[i] if i < len(names) else str(i)) for i in range(n_classes)]
    if class_map.nodata is not None and valid.size < values.size:
        handles.append(Patch(facecolor="white", edgecolor="grey", label="no data"))
    figure, axis = plt.subplots(figsize=(8, 8 * values.shape[0] / values.shape[1] + 0.6))
    axis.imshow(colours[values])
    axis.set_axis_off()
    axis.set_title("Class map (FCNN, cropped tile-by-tile inference)")
    axis.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles), frameon=False)
    classmap = output / "classes.png"
    figure.savefig(classmap, dpi=110, bbox_inches="tight")
    plt.close(figure)
    written.append(classmap)

    grid = on_scene_grid(class_map, scene)
    rings = test_outlines(polygons, scene)
    zooms = zoom_windows(scene, offset)
    figure, axes = plt.subplots(len(zooms), 2, figsize=(11, 5.5 * len(zooms)), squeeze=False)
    for (title, (row, col, size)), (left, right) in zip(zooms.items(), axes, strict=True):
        left.imshow(stretch(read_rgb(scene, (3, 2, 1), max_size=size, window=(col, row, size, size)), limits),
                    extent=(col, col + size, row + size, row))
        right.imshow(colours[grid[row:row + size, col:col + size]], extent=(col, col + size, row + size, row),
                     interpolation="nearest")
        for ring in rings:
            if ring[:, 0].max() >= col and ring[:, 0].min() <= col + size and ring[:, 1].max() >= row \
                    and ring[:, 1].min() <= row + size:
                left.plot(ring[:, 0], ring[:, 1], color="white", linewidth=1)
                right.plot(ring[:, 0], ring[:, 1], color="black", linewidth=1)
        for axis, what in ((left, "scene"), (right, "map")):
            axis.set_xlim(col, col + size)
            axis.set_ylim(row + size, row)
            axis.set_axis_off()
            axis.set_title(f"{title}: {what}")
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    figure.suptitle("Scene and class map side by side; outlined: test polygons (never seen in training)")
    figure.tight_layout(rect=(0, 0.03, 1, 0.98))
    zoomed = output / "zooms.png"
    figure.savefig(zoomed, dpi=100, bbox_inches="tight")
    plt.close(figure)
    written.append(zoomed)

    history_path = model_dir / "history.json"
    if history_path.exists():
        history = json.loads(history_path.read_text())
        exported = history.get("exported_epoch")
        figure, axes = plt.subplots(1, 2, figsize=(10, 4))
        for key, series in history.items():
            if not isinstance(series, list) or key == "epoch":
                continue
            target = axes[0] if "loss" in key else axes[1]
            target.plot(range(1, len(series) + 1), series, label=key)
        for axis, title in zip(axes, ("Loss", "Metrics"), strict=True):
            if isinstance(exported, int):
                axis.axvline(exported, color="grey", linestyle="--", linewidth=1, label="exported epoch")
            axis.set_xlabel("epoch")
            axis.set_title(title)
            axis.legend()
            axis.grid(alpha=0.3)
        curves = output / "training_curves.png"
        figure.savefig(curves, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(curves)
    return written


def class_fractions(class_map: ClassMap, names: list[str]) -> dict[str, float]:
    """Fraction of the map's pixels with data, per class name."""
    values = class_map.values
    valid = values.ravel() if class_map.nodata is None else values[values != class_map.nodata]
    counts = np.bincount(valid, minlength=len(names))
    return {(names[i] if i < len(names) else str(i)): round(float(c) / max(valid.size, 1), 4)
            for i, c in enumerate(counts) if c}


def polygons_per_set(polygons: Path) -> dict[str, dict[str, int]]:
    """Class → split → number of polygons, from the selection's polygons output (field ``split``)."""
    source = ogr.Open(str(polygons))  # keep the data source alive while its layer is used
    counts: dict[str, dict[str, int]] = {}
    for feature in source.GetLayer(0):
        per_set = counts.setdefault(str(feature.GetField("name")), {})
        split = str(feature.GetField("split"))
        per_set[split] = per_set.get(split, 0) + 1
    return dict(sorted(counts.items()))


def read_csv(path: Path) -> list[list[str]]:
    """The rows of a CSV file."""
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.reader(stream))


def size_of(path: Path) -> int:
    """Bytes of a file or of everything below a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _percent(text: str) -> str:
    return f"{100 * float(text):.1f} %" if text else "—"


def _hectares(text: str) -> str:
    return f"{float(text):,.0f}" if text else "—"


def accuracy_section(assessment: dict[str, str], matrix: list[list[str]], table: list[list[str]],
                     sets: dict[str, dict[str, int]]) -> list[str]:
    """The report's validation part: the split, OA with its interval, kappa, the class table, matrix, areas."""
    oa, low, high = (100 * float(assessment[key]) for key in
                     ("OVERALL_ACCURACY", "OVERALL_ACCURACY_LOW", "OVERALL_ACCURACY_HIGH"))
    header, rows = table[0], [dict(zip(table[0], row, strict=True)) for row in table[1:]]
    lines = ["## How the map was validated", "",
             "The labelled polygons were split into train, valid and test sets by whole polygons, stratified per "
             "class: no test pixel shares a polygon with a training or validation position. Training used the "
             "train set, the exported epoch was chosen on the valid set, and the map is assessed here on the test "
             "polygons only.", "", "| class | train | valid | test |", "|---|---|---|---|"]
    lines += [f"| {name} | {n.get('train', 0)} | {n.get('valid', 0)} | {n.get('test', 0)} |"
              for name, n in sets.items()]
    lines += ["", "## Accuracy on the test polygons", "",
              f"- Overall accuracy: **{oa:.1f} %** (95 % interval {low:.1f} – {high:.1f} %, counting each polygon "
              "as one sampling unit: the pixels of a polygon are not independent)",
              f"- Kappa: **{float(assessment['KAPPA']):.3f}**",
              f"- F1: mean {float(assessment['MEAN_F1']):.3f}, lowest {float(assessment['MIN_F1']):.3f}", "",
              "| class | user's accuracy | producer's accuracy | F1 | test pixels |", "|---|---|---|---|---|"]
    lines += [f"| {r['class']} | {_percent(r['users_accuracy'])} | {_percent(r['producers_accuracy'])} | "
              f"{float(r['f1']):.3f} | {r['reference_pixels']} |" if r["f1"] else
              f"| {r['class']} | {_percent(r['users_accuracy'])} | {_percent(r['producers_accuracy'])} | — | "
              f"{r['reference_pixels']} |" for r in rows]
    lines += ["", "Confusion matrix (pixels; rows: the map's class, columns: the test polygons' class):", "",
              "| " + " | ".join(matrix[0]) + " |", "|" + "---|" * len(matrix[0])]
    lines += ["| " + " | ".join(row) + " |" for row in matrix[1:]]
    if "estimated_area_ha" in header:
        lines += ["", "## Areas", "",
                  "Mapped areas and the areas estimated from the map and the test sample (Olofsson et al. 2014, "
                  "map classes as strata), in hectares:", "",
                  "| class | mapped | estimated | 95 % interval |", "|---|---|---|---|"]
        lines += [f"| {r['class']} | {_hectares(r['mapped_area_ha'])} | {_hectares(r['estimated_area_ha'])} | "
                  f"± {_hectares(r['estimated_area_ci95_ha'])} |" for r in rows]
        lines += ["", "The test polygons are not a random sample of the map (they were drawn where the class is "
                  "clear), so these estimates and intervals are indicative only; the assessment's HTML report says "
                  "why."]
    lines += ["", "## What these figures do not say", "",
              "The polygons were drawn inside homogeneous areas, away from field edges and shores: mixed pixels and "
              "narrow features (riparian forest strips, streams, roads) are rare in the test set, so the map is "
              "less accurate there than these figures. Look at the zooms (`zooms.png`) before trusting the map.", ""]
    return lines


def write_report(demo: Demo, scene: Path, out: dict[str, Path], output: Path, model_json: dict[str, Any],
                 class_map: ClassMap, accuracy: list[str]) -> Path:
    """A short Markdown report: validation, accuracy, training, class fractions, timings, sizes."""
    training = model_json.get("training", {})
    names = list(model_json.get("class_names") or [])
    scene_ds = gdal.Open(str(scene))
    height, width = class_map.values.shape
    lines = ["# otbtf_qgis demo report", "",
             f"Scene: {scene.name}, {scene_ds.RasterXSize} × {scene_ds.RasterYSize} pixels, "
             f"{scene_ds.RasterCount} bands. Class map: {width} × {height} pixels, origin "
             f"{class_map.geotransform[0]:.1f}, {class_map.geotransform[3]:.1f}.", "", *accuracy,
             "## Training", "",
             f"{training.get('model_type', 'fcnn').upper()}, patches of {PATCH_SIZE} pixels, "
             f"{training.get('epochs_run', '?')} epochs run; exported: epoch {training.get('exported_epoch', '?')} "
             "(best validation loss). Metrics of the exported model on the labelled pixels of the patches (test: "
             "patches of the test polygons):", ""]
    for key, value in sorted((training.get("metrics") or {}).items()):
        lines.append(f"- {key}: {value:.4f}" if isinstance(value, float) else f"- {key}: {value}")
    lines += ["", "## Class fractions of the map", ""]
    if class_map.nodata is not None:
        no_data = float(np.mean(class_map.values == class_map.nodata))
        lines += [f"Of the pixels with data ({100 * no_data:.1f} % of the map is the scene's no-data border):", ""]
    lines += [f"- {name}: {100 * share:.1f} %" for name, share in class_fractions(class_map, names).items()]
    lines += ["", "## Timings", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {title} | {seconds:.1f} |" for title, seconds in demo.timings.items()]
    lines += [f"| total | {sum(demo.timings.values()):.1f} |", "", "## Sizes", "", "| output | MB |", "|---|---|"]
    lines += [f"| {name} ({path.name}) | {size_of(path) / 1e6:.2f} |" for name, path in out.items()]
    report = output / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report


def parse_window(text: str) -> tuple[int, int, int, int]:
    """``COLUMN,ROW,WIDTH,HEIGHT`` → four integers."""
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected COLUMN,ROW,WIDTH,HEIGHT in pixels, got {text!r}")
    col, row, width, height = (int(p) for p in parts)
    return col, row, width, height


def main() -> None:
    """Command line of the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "demo-output",
                        help="folder of the results (replaced; default: demo-output)")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "demo",
                        help="folder of the scene, fetched there when missing (default: data/demo)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default: 12)")
    parser.add_argument("--step", type=int, default=2, help="sampling grid step inside the polygons (pixels)")
    parser.add_argument("--window", type=parse_window, default=None, metavar="COLUMN,ROW,WIDTH,HEIGHT",
                        help="work on this window of the scene only (fast variant; it needs at least three "
                             "polygons of each class)")
    parser.add_argument("--verbose", action="store_true", help="show every message of every step")
    args = parser.parse_args()

    subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_demo_data.py"), "--target", str(args.data),
                    "--cache", str(args.data.parent)], check=True)
    output = args.output.resolve()
    if output.exists():
        shutil.rmtree(output)
    work = output / "work"
    work.mkdir(parents=True)
    scene, labels, offset = args.data / "scene.tif", LABELS, (0, 0)
    if args.window is not None:
        scene, labels = cut_window(scene, labels, args.window, work)
        offset = args.window[:2]

    demo = Demo(QGIS_PROCESS, args.verbose)
    sets = ("train", "valid", "test")
    out = {
        "polygons": output / "polygons_split.gpkg",
        "patches": work / "patches",
        "tfrecords": work / "tfrecords",
        "model": output / "model",
        "probabilities": output / "probabilities.tif",
        "classes": output / "classes.tif",
        "matrix": output / "confusion_matrix.csv",
        "class table": output / "class_accuracy.csv",
        "assessment": output / "accuracy.html",
    }
    demo.run(1, "Split the polygons (whole polygons) and sample positions in them", "otbtf:patchesselection",
             INPUT=scene, POLYGONS=labels, CLASS_FIELD="name", PATCH_SIZE=PATCH_SIZE, STEP=args.step,
             STRATEGY="polygons", TRAIN_PROPORTION=0.7, VALID_PROPORTION=0.15, TEST_PROPORTION=0.15,
             MAX_PER_CLASS=1200, SEED=42, OUTPUT_POLYGONS=out["polygons"],
             **{f"OUTPUT_{s.upper()}": work / f"{s}.gpkg" for s in sets},
             OUTPUT_LABELS=work / "labels_train.tif", OUTPUT_VALID_LABELS=work / "labels_valid.tif",
             OUTPUT_TEST_LABELS=work / "labels_test.tif")
    for split in sets:
        demo.run(2, f"Extract the {split} patches (scene + labels of the {split} polygons)",
                 "otbtf:patchesextraction", SOURCES=[scene, work / f"labels_{split}.tif"], SOURCE_NAMES="xs,labels",
                 PATCH_SIZES=PATCH_SIZE, POINTS=work / f"{split}.gpkg", OUTPUT_DIR=out["patches"] / split)
    demo.run(3, "Convert the patches to TFRecords", "otbtf:createtfrecords",
             INPUT=[out["patches"] / s for s in sets], OUTPUT_DIR=out["tfrecords"])
    demo.run(4, f"Train the FCNN ({args.epochs} epochs, CPU; the best validation epoch is kept)", "otbtf:trainmodel",
             TRAIN_DATA=out["tfrecords"] / "train", VALID_DATA=out["tfrecords"] / "valid",
             TEST_DATA=out["tfrecords"] / "test", EPOCHS=args.epochs, BATCH_SIZE=16,
             LEARNING_RATE=0.001, SEED=42, AUGMENT=True, MIX=True, OUTPUT_MODEL=out["model"])
    demo.run(5, "Serve the model over the whole scene", "otbtf:modelserve",
             SOURCES=scene, MODEL=out["model"], NODATA="0", OUTPUT=out["probabilities"],
             OUTPUT_CLASSES=out["classes"])
    assessment = demo.run(6, "Assess the map on the test polygons", "otbtf:accuracyassessment",
                          INPUT=out["classes"], REFERENCE=out["polygons"], CLASS_FIELD="name", SPLIT_FIELD="split",
                          SPLIT_VALUE="test", OUTPUT_MATRIX=out["matrix"], OUTPUT_REPORT=out["assessment"],
                          OUTPUT_CLASS_TABLE=out["class table"])
    print(f"\n[7/{STEPS}] Quicklooks and report", flush=True)
    model_json = json.loads((out["model"] / "otbtf_model.json").read_text())
    names = list(model_json.get("class_names") or [])
    class_map = read_class_map(out["classes"])
    pictures = quicklooks(scene, class_map, names, out["model"], out["polygons"], offset, output)
    accuracy = accuracy_section(assessment, read_csv(out["matrix"]), read_csv(out["class table"]),
                                polygons_per_set(out["polygons"]))
    report = write_report(demo, scene, out, output, model_json, class_map, accuracy)
    print(f"\nOverall accuracy on the test polygons: {100 * float(assessment['OVERALL_ACCURACY']):.1f} % "
          f"(95 % interval {100 * float(assessment['OVERALL_ACCURACY_LOW']):.1f} – "
          f"{100 * float(assessment['OVERALL_ACCURACY_HIGH']):.1f} %), kappa {float(assessment['KAPPA']):.3f}, "
          f"lowest class F1 {float(assessment['MIN_F1']):.3f}")
    print("\nResults:")
    for path in [out["classes"], out["probabilities"], out["model"], out["assessment"], *pictures, report]:
        print(f"    {path}")


if __name__ == "__main__":
    main()
