"""The main job end to end on a real Landsat 8 scene, through ``qgis_process``.

Chain: sample positions inside labelled polygons (sparse labels) → patches → TFRecords →
train the FCNN on the CPU → serve the model over the whole scene → class map and
probabilities GeoTIFFs, PNG quicklooks, training curves and a short report.

Run by ``make demo``; ``--crop`` and ``--epochs`` make a small, fast variant for tests.
"""

from __future__ import annotations

import argparse
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
PATCH_SIZE = 64
STEPS = 6


class Demo:
    """Runs the steps, times them and keeps what the report needs."""

    def __init__(self, output: Path, qgis_process: Path, verbose: bool) -> None:
        self.output = output
        self.qgis_process = qgis_process
        self.verbose = verbose
        self.timings: dict[str, float] = {}

    def run(self, step: int, title: str, algorithm: str, **params: Any) -> None:
        """Run one algorithm through qgis_process, streaming its progress; stop the demo on failure."""
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


def _is_progress(line: str) -> bool:
    text = line.strip()
    return (text.startswith(("0...", "10...")) or (text[:1].isdigit() and "..." in text)
            or text.startswith(("Epoch", "epoch", "Kept", "kept", "Tiles", "tiles", "Output", "Training", "Samples")))


def crop_scene(scene: Path, polygons: Path, target: Path, margin: int) -> Path:
    """Cut the scene to the polygons' extent plus ``margin`` pixels (for the fast variant)."""
    dataset = gdal.Open(str(scene))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    source = ogr.Open(str(polygons))  # keep the data source alive while its layer is used
    xmin, xmax, ymin, ymax = source.GetLayer(0).GetExtent()
    col0 = max(0, int((xmin - x0) / dx) - margin)
    col1 = min(dataset.RasterXSize, int((xmax - x0) / dx) + margin)
    row0 = max(0, int((ymax - y0) / dy) - margin)
    row1 = min(dataset.RasterYSize, int((ymin - y0) / dy) + margin)
    gdal.Translate(str(target), dataset, srcWin=[col0, row0, col1 - col0, row1 - row0],
                   creationOptions=["TILED=YES", "COMPRESS=ZSTD"])
    return target


def stretch(bands: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """2–98 % linear stretch per band to uint8, ignoring zeros (no data)."""
    out = np.zeros(bands.shape, np.uint8)
    for index in range(bands.shape[2]):
        band = bands[:, :, index].astype(np.float64)
        valid = band[band > 0]
        if valid.size == 0:
            continue
        low, high = np.percentile(valid, (2, 98))
        out[:, :, index] = np.clip((band - low) / max(high - low, 1e-9) * 255, 0, 255).astype(np.uint8)
    return out


def read_rgb(path: Path, bands: tuple[int, int, int], max_size: int = 1200) -> npt.NDArray[Any]:
    """Read three bands decimated so the longer side is at most ``max_size``."""
    dataset = gdal.Open(str(path))
    factor = max(1, int(np.ceil(max(dataset.RasterXSize, dataset.RasterYSize) / max_size)))
    width, height = dataset.RasterXSize // factor, dataset.RasterYSize // factor
    planes = [dataset.GetRasterBand(b).ReadAsArray(buf_xsize=width, buf_ysize=height) for b in bands]
    return np.dstack(planes)


# A NamedTuple, not a dataclass: tests load this script without registering it as a module.
class ClassMap(NamedTuple):
    """The served class map, read once for the quicklooks and the report."""

    values: npt.NDArray[Any]
    #: RGB per class value (0..255), grey where the colour table has no entry.
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
    return ClassMap(band.ReadAsArray(), colours, tuple(dataset.GetGeoTransform()),
                    None if nodata is None else int(nodata))


def quicklooks(scene: Path, class_map: ClassMap, names: list[str], model_dir: Path, output: Path) -> list[Path]:
    """True-colour scene, class map with legend, training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    written = []
    rgb = stretch(read_rgb(scene, (3, 2, 1)))
    truecolor = output / "scene_truecolor.png"
    plt.imsave(truecolor, rgb)
    written.append(truecolor)

    values, colours = class_map.values, class_map.colours.copy()
    valid = values if class_map.nodata is None else values[values != class_map.nodata]
    n_classes = max(len(names), int(valid.max()) + 1 if valid.size else 0)
    figure, axis = plt.subplots(figsize=(8, 8 * values.shape[0] / values.shape[1] + 0.6))
    if class_map.nodata is not None:
        colours[class_map.nodata] = (255, 255, 255)
    axis.imshow(colours[values])
    axis.set_axis_off()
    axis.set_title("Class map (FCNN, cropped tile-by-tile inference)")
    handles = [Patch(color=colours[i] / 255, label=names[i] if i < len(names) else str(i)) for i in range(n_classes)]
    if class_map.nodata is not None and valid.size < values.size:
        handles.append(Patch(facecolor="white", edgecolor="grey", label="no data"))
    axis.legend(handles=handles, loc="lower right", framealpha=0.85)
    classmap = output / "classes.png"
    figure.savefig(classmap, dpi=110, bbox_inches="tight")
    plt.close(figure)
    written.append(classmap)

    history_path = model_dir / "history.json"
    if history_path.exists():
        history = json.loads(history_path.read_text())
        figure, axes = plt.subplots(1, 2, figsize=(10, 4))
        for key, values_ in history.items():
            if not isinstance(values_, list):
                continue
            target = axes[0] if "loss" in key else axes[1]
            target.plot(range(1, len(values_) + 1), values_, label=key)
        for axis, title in zip(axes, ("Loss", "Metrics"), strict=True):
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


def size_of(path: Path) -> int:
    """Bytes of a file or of everything below a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_report(demo: Demo, scene: Path, out: dict[str, Path], output: Path, model_json: dict[str, Any],
                 class_map: ClassMap, fractions: dict[str, float]) -> Path:
    """A short Markdown report: metrics, timings, sizes, output grid."""
    training = model_json.get("training", {})
    scene_ds = gdal.Open(str(scene))
    height, width = class_map.values.shape
    lines = ["# otbtf_qgis demo report", "",
             f"Scene: {scene.name}, {scene_ds.RasterXSize} × {scene_ds.RasterYSize} pixels, "
             f"{scene_ds.RasterCount} bands.", "",
             f"Class map: {width} × {height} pixels, origin "
             f"{class_map.geotransform[0]:.1f}, {class_map.geotransform[3]:.1f} (the scene's grid shrunk by "
             "the receptive field).", "", "## Metrics", ""]
    for key, value in sorted((training.get("metrics") or {}).items()):
        lines.append(f"- {key}: {value:.4f}" if isinstance(value, float) else f"- {key}: {value}")
    lines += ["", "## Class fractions of the map", ""]
    if class_map.nodata is not None:
        no_data = float(np.mean(class_map.values == class_map.nodata))
        lines += [f"Of the pixels with data ({100 * no_data:.1f} % of the map is the scene's no-data border):", ""]
    lines += [f"- {name}: {100 * share:.1f} %" for name, share in fractions.items()]
    lines += ["", "## Timings", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {title} | {seconds:.1f} |" for title, seconds in demo.timings.items()]
    lines += [f"| total | {sum(demo.timings.values()):.1f} |", "", "## Sizes", "", "| output | MB |", "|---|---|"]
    lines += [f"| {name} ({path.name}) | {size_of(path) / 1e6:.2f} |" for name, path in out.items()]
    report = output / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report


def main() -> None:
    """Command line of the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "demo-output")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--step", type=int, default=2, help="sampling grid step inside the polygons (pixels)")
    parser.add_argument("--crop", type=int, default=None, metavar="MARGIN",
                        help="cut the scene to the polygons' extent plus MARGIN pixels (fast variant)")
    parser.add_argument("--verbose", action="store_true", help="show every message of every step")
    args = parser.parse_args()

    subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_demo_data.py"), "--target", str(args.data),
                    "--cache", str(args.data.parent)], check=True)
    output = args.output.resolve()
    if output.exists():
        shutil.rmtree(output)
    work = output / "work"
    work.mkdir(parents=True)
    scene, polygons = args.data / "scene.tif", args.data / "polygons.gpkg"
    if args.crop is not None:
        scene = crop_scene(scene, polygons, work / "scene_crop.tif", args.crop)

    demo = Demo(output, QGIS_PROCESS, args.verbose)
    out = {
        "labels": work / "labels.tif",
        "patches": work / "patches",
        "tfrecords": work / "tfrecords",
        "model": output / "model",
        "probabilities": output / "probabilities.tif",
        "classes": output / "classes.tif",
    }
    demo.run(1, "Sample positions inside the labelled polygons", "otbtf:patchesselection",
             INPUT=scene, POLYGONS=polygons, CLASS_FIELD="name", PATCH_SIZE=PATCH_SIZE, STEP=args.step,
             STRATEGY="split", TRAIN_PROPORTION=0.75, VALID_PROPORTION=0.25, TEST_PROPORTION=0.0, SEED=42,
             OUTPUT_TRAIN=work / "train.gpkg", OUTPUT_VALID=work / "valid.gpkg", OUTPUT_LABELS=out["labels"])
    for split in ("train", "valid"):
        demo.run(2, f"Extract {split} patches (scene + sparse labels)", "otbtf:patchesextraction",
                 SOURCES=[scene, out["labels"]], SOURCE_NAMES="xs,labels", PATCH_SIZES=PATCH_SIZE,
                 POINTS=work / f"{split}.gpkg", OUTPUT_DIR=out["patches"] / split)
    demo.run(3, "Convert patches to TFRecords", "otbtf:createtfrecords",
             INPUT=[out["patches"] / "train", out["patches"] / "valid"], OUTPUT_DIR=out["tfrecords"])
    demo.run(4, f"Train the FCNN ({args.epochs} epochs, CPU)", "otbtf:trainmodel",
             TRAIN_DATA=out["tfrecords"] / "train", VALID_DATA=out["tfrecords"] / "valid", EPOCHS=args.epochs,
             BATCH_SIZE=8, LEARNING_RATE=0.001, SEED=42, AUGMENT=True, OUTPUT_MODEL=out["model"])
    demo.run(5, "Serve the model over the whole scene", "otbtf:modelserve",
             SOURCES=scene, MODEL=out["model"], NODATA="0", OUTPUT=out["probabilities"],
             OUTPUT_CLASSES=out["classes"])
    print(f"\n[6/{STEPS}] Quicklooks and report", flush=True)
    model_json = json.loads((out["model"] / "otbtf_model.json").read_text())
    names = list(model_json.get("class_names") or [])
    class_map = read_class_map(out["classes"])
    pictures = quicklooks(scene, class_map, names, out["model"], output)
    report = write_report(demo, scene, out, output, model_json, class_map, class_fractions(class_map, names))
    print("\nResults:")
    for path in [out["classes"], out["probabilities"], out["model"], *pictures, report]:
        print(f"    {path}")


if __name__ == "__main__":
    main()
