"""Serving benchmark: the engine against the model alone and a sequential loop; memory and time scaling.

On the FCNN (untrained, random weights; 4-band uint16 input; output
``predictions_softmax_tensor_crop16``, rf 64, ef 32), CPU only:

- efficiency: the engine's throughput ÷ the model alone on the same tiles in memory;
- speed-up over a straightforward sequential loop (read a tile with GDAL, predict, write
  it) with the same tile size and the same traced model;
- peak RSS serving 16384² vs 4096² pixels, and the time for 4× (and 16×) the pixels;
- the 4-class case (:func:`run_classes`, also runnable alone with ``--classes WORKDIR``):
  a demo-like 4-class FCNN on a 3-band 8192² image, the engine ÷ the model alone for a
  float32 output, a ``scaled_uint8`` output and the class map only.

Inputs are VRT mosaics of one 2048² tiled GeoTIFF (made in seconds, read like a big
file). Every measurement runs in its own subprocess (``--child``) so that peak memory and
TensorFlow state are per case. Runs are interleaved and repeated; the best time of each
method is kept, since the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

BASE = 2048
BANDS = 4
OUTPUT_NAME = "predictions_softmax_tensor_crop16"
REPEATS = 5
#: Tile sizes compared on one region (0: automatic).
TILE_SIZES = (64, 256, 0)
#: The 4-class case: the demo's classes and bands (Landsat 8 B2, B3, B4), image side, runs per method.
CLASS_NAMES = ("water", "crop", "tree", "developed")
CLASS_BANDS = 3
CLASS_SIZE = 8192
CLASS_REPEATS = 5


# ----------------------------------------------------------------------------- data
def build_model(folder: Path, class_names: tuple[str, ...] = ("class 0", "class 1"), bands: int = BANDS) -> None:
    """Export the FCNN of OTBTF's documentation, untrained, for 64-pixel patches of ``bands``-band uint16 images."""
    import keras
    import tensorflow as tf

    from otbtf_qgis.core.models.export import export_model
    from otbtf_qgis.core.models.fcnn import FCNNModel

    keras.utils.set_random_seed(0)
    spec = ({"input_xs": tf.TensorSpec((None, 64, 64, bands), tf.uint16)}, {})
    description = export_model(FCNNModel(spec, n_classes=len(class_names)), folder, {"input_xs": (64, 64)},
                               list(class_names))
    serving = description["serving"]
    if (serving["output_name"], serving["receptive_field"], serving["expression_field"]) != (
            OUTPUT_NAME, [64, 64], [32, 32]):
        raise RuntimeError(f"unexpected serving defaults of the FCNN: {serving}")


def build_base_image(path: Path, bands: int = BANDS) -> None:
    """A 2048² ``bands``-band uint16 tiled GeoTIFF: smooth fields plus noise, like reflectances."""
    import numpy as np
    from osgeo import gdal, osr

    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:BASE, 0:BASE].astype(np.float32)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), BASE, BASE, bands, gdal.GDT_UInt16,
                                                   ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"])
    dataset.SetGeoTransform((500000.0, 10.0, 0.0, 4600000.0, 0.0, -10.0))
    dataset.SetProjection(srs.ExportToWkt())
    for band in range(bands):
        field = 1500 + 800 * np.sin(cols / (40 + 9 * band)) * np.cos(rows / (55 + 7 * band))
        noisy = field + rng.normal(0, 120, field.shape)
        dataset.GetRasterBand(band + 1).WriteArray(np.clip(noisy, 0, 4095).astype(np.uint16))
    dataset = None


def build_mosaic(base: Path, path: Path, size: int, band_count: int = BANDS) -> None:
    """A VRT of ``size``² pixels repeating the base image."""
    count = size // BASE
    bands = []
    for band in range(1, band_count + 1):
        sources = "".join(
            f"<SimpleSource><SourceFilename relativeToVRT=\"0\">{base}</SourceFilename>"
            f"<SourceBand>{band}</SourceBand><SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{BASE}\" ySize=\"{BASE}\"/>"
            f"<DstRect xOff=\"{i * BASE}\" yOff=\"{j * BASE}\" xSize=\"{BASE}\" ySize=\"{BASE}\"/></SimpleSource>"
            for j in range(count) for i in range(count))
        bands.append(f"<VRTRasterBand dataType=\"UInt16\" band=\"{band}\">{sources}</VRTRasterBand>")
    from osgeo import gdal

    reference = gdal.Open(str(base))
    path.write_text(
        f"<VRTDataset rasterXSize=\"{size}\" rasterYSize=\"{size}\"><SRS>{reference.GetProjection()}</SRS>"
        f"<GeoTransform>{', '.join(map(str, reference.GetGeoTransform()))}</GeoTransform>{''.join(bands)}"
        "</VRTDataset>", encoding="utf-8")


# ---------------------------------------------------------------------- child cases
def _config(image: str, model: str, output: str, creation_options: tuple[str, ...] = ()) -> Any:
    from otbtf_qgis.core.serving import ServeConfig, SourceConfig

    return ServeConfig(sources=(SourceConfig((image,)),), model=model, output=output,
                       creation_options=creation_options)


def child_compare(mode: str, image: str, model: str, workdir: str) -> dict[str, Any]:
    """Model alone vs engine (vs sequential loops) on the same plan, interleaved.

    ``mode`` "split": TensorFlow set up as the ``modelserve`` worker does (two tiles at
    once, :func:`configure_threads`); the model alone then also runs two tiles at once.
    "default": TensorFlow's default threads, one tile at a time, and the sequential loops
    (a straightforward script gets these defaults).
    """

    import numpy as np
    from osgeo import gdal

    from otbtf_qgis.core.io.raster import open_raster, read_window
    from otbtf_qgis.core.io.windows import Window, tile_grid
    from otbtf_qgis.core.models.saved_model import configure_threads
    from otbtf_qgis.core.serving.plan import prepare
    from otbtf_qgis.core.serving.stream import open_sources, read_tile, serve_plan

    if mode == "split":
        configure_threads()
    plan = prepare(_config(image, model, f"{workdir}/engine.tif"))
    grid = plan.geometry.window
    tiles = list(tile_grid(grid.width, grid.height, *plan.tile_size))
    source = plan.sources[0]
    datasets = open_sources(plan)
    in_memory = [read_tile(plan, datasets, tile).arrays for tile in tiles]

    def model_alone() -> float:
        return model_alone_seconds(plan, in_memory)

    def loop(options: list[str], name: str) -> float:
        started = time.perf_counter()
        dataset = open_raster(image)
        out = gdal.GetDriverByName("GTiff").Create(f"{workdir}/{name}.tif", grid.width, grid.height, 2,
                                                   gdal.GDT_Float32, options)
        for tile in tiles:
            regular = Window(tile.col_off, tile.row_off, *plan.tile_size)
            window = plan.geometry.input_window(0, regular)
            array = read_window(dataset, window, dtype=source.dtype)
            (result,) = plan.function(array[None])
            out.WriteArray(np.ascontiguousarray(result[0, :tile.height, :tile.width]), tile.col_off, tile.row_off,
                           interleave="pixel")
        out = None
        return time.perf_counter() - started

    methods: dict[str, Any] = {
        "model": model_alone,
        "engine": lambda: float(serve_plan(plan, f"{workdir}/engine.tif")["seconds"]),
    }
    if mode == "split":
        uncompressed = prepare(_config(image, model, f"{workdir}/engine.tif", ("COMPRESS=NONE",)))
        methods["engine_none"] = lambda: float(serve_plan(uncompressed, f"{workdir}/engine_none.tif")["seconds"])
    else:
        methods["loop_lzw"] = lambda: loop(["TILED=YES", "COMPRESS=LZW", "BIGTIFF=IF_SAFER"], "loop_lzw")
        methods["loop_zstd"] = lambda: loop(list(plan.creation_options), "loop_zstd")
    times: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(REPEATS):
        for name, method in methods.items():
            # Each run writes a new file, as a user's first run does: replacing the previous
            # output would add the freeing of its pages (about 60 ms for 130 MB) to the run.
            Path(workdir, f"{name}.tif").unlink(missing_ok=True)
            started = process_cpu()
            times[name].append(method())
            cpu[name].append(process_cpu() - started)
    return {"pixels": grid.width * grid.height, "tile_size": plan.tile_size, "tiles": len(tiles),
            "workers": plan.workers, "times": times, "cpu": cpu}


def child_tiles(image: str, model: str, workdir: str) -> dict[str, Any]:
    """The engine on the same 2048² output region with small, medium and automatic tiles."""
    from otbtf_qgis.core.io.windows import Window
    from otbtf_qgis.core.models.saved_model import configure_threads
    from otbtf_qgis.core.serving.plan import prepare
    from otbtf_qgis.core.serving.stream import serve_plan

    configure_threads()
    region = Window(0, 0, 2048, 2048)
    rates: dict[str, float] = {}
    for tile_size in TILE_SIZES:
        config = _config(image, model, f"{workdir}/tiles.tif")
        plan = prepare(dataclasses.replace(config, tile_size=tile_size))
        times = []
        for _ in range(2):
            Path(workdir, "tiles.tif").unlink(missing_ok=True)
            times.append(float(serve_plan(plan, f"{workdir}/tiles.tif", region)["seconds"]))
        seconds = min(times)
        rates["x".join(map(str, plan.tile_size)) + (" (automatic)" if tile_size == 0 else "")] = (
            region.width * region.height / 1e6 / seconds)
    return {"rates": rates}


def child_classes(image: str, model: str, workdir: str) -> dict[str, Any]:
    """The 4-class model alone vs the engine writing float32, scaled_uint8 or only the class map, interleaved.

    TensorFlow is set up as the ``modelserve`` worker does; the model alone runs the same
    tiles, in memory, as many at a time as the engine.
    """

    from otbtf_qgis.core.models.saved_model import configure_threads
    from otbtf_qgis.core.serving.plan import prepare
    from otbtf_qgis.core.serving.stream import open_sources, read_tile, serve_plan

    configure_threads()
    float32 = prepare(_config(image, model, f"{workdir}/float32.tif"))
    scaled = prepare(dataclasses.replace(_config(image, model, f"{workdir}/scaled.tif"), output_type="scaled_uint8"))
    grid = float32.geometry.window
    tiles = float32.tiles(grid)
    datasets = open_sources(float32)
    in_memory = [read_tile(float32, datasets, tile).arrays for tile in tiles]

    def model_alone() -> float:
        return model_alone_seconds(float32, in_memory)

    methods: dict[str, Any] = {
        "model": model_alone,
        "float32": lambda: float(serve_plan(float32, f"{workdir}/float32.tif")["seconds"]),
        "scaled_uint8": lambda: float(serve_plan(scaled, f"{workdir}/scaled_uint8.tif")["seconds"]),
        "classes": lambda: float(serve_plan(float32, "", output_classes=f"{workdir}/classes.tif")["seconds"]),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    sizes: dict[str, int] = {}
    for _ in range(CLASS_REPEATS):
        for name, method in methods.items():
            Path(workdir, f"{name}.tif").unlink(missing_ok=True)
            times[name].append(method())
            if Path(workdir, f"{name}.tif").exists():
                sizes[name] = Path(workdir, f"{name}.tif").stat().st_size
    for name in methods:
        Path(workdir, f"{name}.tif").unlink(missing_ok=True)
    return {"pixels": grid.width * grid.height, "tile_size": float32.tile_size, "tiles": len(tiles),
            "workers": float32.workers, "bands": float32.output_bands[0], "times": times, "file_bytes": sizes}


def run_classes(workdir: Path) -> str:
    """Measure the 4-class case and return its Markdown section."""
    model = workdir / "fcnn4"
    run_child("model4", str(model))
    base = workdir / "base3.tif"
    run_child("base3", str(base))
    image = workdir / f"image3_{CLASS_SIZE}.vrt"
    build_mosaic(base, image, CLASS_SIZE, CLASS_BANDS)
    case = run_child("classes", str(image), str(model), str(workdir))
    best = {name: min(values) for name, values in case["times"].items()}
    mpix = case["pixels"] / 1e6

    def ratio(name: str) -> float:
        return best["model"] / best[name]

    rows = []
    for name, label, target in (("float32", "float32 probabilities (4 bands)", "—"),
                                ("scaled_uint8", "`scaled_uint8` probabilities (4 bands)", "≥ 0.90"),
                                ("classes", "class map only (`OUTPUT_CLASSES`, no `OUTPUT`)", "≥ 0.90")):
        met = "—" if target == "—" else ("yes" if ratio(name) >= 0.9 else "**no**")
        size = case["file_bytes"].get(name)
        megabytes = f"{size / 1e6:.0f}" if size else "—"
        rows.append(f"| {label} | {mpix / best[name]:.2f} | {ratio(name):.2f} | {target} | {met} | {megabytes} |")
    raw = "; ".join(f"{name} {', '.join(f'{v:.2f}' for v in values)}" for name, values in case["times"].items())
    tile = case["tile_size"]
    return "\n".join([
        "### Serving a 4-class model: output cost",
        "",
        f"A demo-like FCNN with {len(CLASS_NAMES)} classes ({', '.join(CLASS_NAMES)}; untrained, rf 64, ef 32) on "
        f"a {CLASS_BANDS}-band uint16 {CLASS_SIZE}² image (VRT mosaic of one 2048² image; {mpix:.1f} output Mpix, "
        f"{case['tiles']} automatic tiles of {tile[0]}×{tile[1]}), ZSTD level 1. The engine and the model alone "
        f"(the same tiles in memory, {case['workers']} at a time) run as the `modelserve` worker sets TensorFlow up; "
        f"best of {CLASS_REPEATS} interleaved runs per method; model alone {mpix / best['model']:.2f} Mpix/s.",
        "",
        "| output | Mpix/s | engine ÷ model alone | target | met | file MB |",
        "|---|---:|---:|---|---|---:|",
        *rows,
        "",
        f"Raw times (s, per run): {raw}.",
    ])


def process_cpu() -> float:
    """CPU seconds (user + system) used by this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_serve(image: str, model: str, output: str) -> dict[str, Any]:
    """Serve one image from scratch (model loading included), as the worker does; report the peak RSS."""
    from otbtf_qgis.core.models.saved_model import configure_threads
    from otbtf_qgis.core.serving.plan import prepare
    from otbtf_qgis.core.serving.stream import serve_plan

    configure_threads()
    started = time.perf_counter()
    plan = prepare(_config(image, model, output))
    setup = time.perf_counter() - started
    cpu = process_cpu()
    result = serve_plan(plan, output)
    return {"setup_seconds": setup, "serve_seconds": result["seconds"], "serve_cpu": process_cpu() - cpu,
            "tile_size": result["tile_size"], "pixels": result["width"] * result["height"], "tiles": result["tiles"],
            "read": result["read_seconds"], "predict": result["predict_seconds"], "write": result["write_seconds"],
            "read_cpu": result["read_cpu_seconds"], "write_cpu": result["write_cpu_seconds"],
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB).

    Linux's ``VmHWM`` belongs to the process image: ``ru_maxrss`` also counts the parent's
    memory at fork time, so a child of a big benchmark process would report the parent's.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_alone_seconds(plan: Any, tiles: list[Any]) -> float:
    """Seconds of the traced model alone on tiles in memory, ``plan.workers`` threads computing at once."""
    import threading

    def compute(part: list[Any]) -> None:
        for arrays in part:
            plan.function(*arrays)

    threads = [threading.Thread(target=compute, args=(tiles[k::plan.workers],)) for k in range(plan.workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def run_child(*args: str, script: Path | None = None) -> dict[str, Any]:
    """Run ``script --child ARGS`` (this benchmark by default) in a fresh process; its last line is JSON."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, str(script or Path(__file__).resolve()), "--child", *args],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -------------------------------------------------------------------------------- run
def run(workdir: Path) -> str:
    """Measure and return the Markdown section."""
    model = workdir / "fcnn"
    run_child("model", str(model))
    base = workdir / "base.tif"
    build_base_image(base)
    images = {}
    for size in (4096, 8192, 16384):
        images[size] = workdir / f"image{size}.vrt"
        build_mosaic(base, images[size], size)
    from osgeo import gdal

    # The comparison reads a real GeoTIFF (tiled, uncompressed), as users' inputs are.
    gdal.Translate(str(workdir / "image4096.tif"), str(images[4096]),
                   creationOptions=["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"])
    compare = {mode: run_child("compare", mode, str(workdir / "image4096.tif"), str(model), str(workdir))
               for mode in ("split", "default")}
    tiles = run_child("tiles", str(workdir / "image4096.tif"), str(model), str(workdir))
    for name in ("engine", "engine_none", "loop_lzw", "loop_zstd", "tiles"):
        (workdir / f"{name}.tif").unlink(missing_ok=True)
    served: dict[int, list[dict[str, Any]]] = {4096: [], 8192: [], 16384: []}
    # Interleaved and repeated: the machine is shared, each size keeps its fastest run.
    for size in (4096, 8192, 16384, 4096, 8192, 16384, 4096):
        served[size].append(run_child("serve", str(images[size]), str(model), str(workdir / f"out{size}.tif")))
        (workdir / f"out{size}.tif").unlink(missing_ok=True)
    return report(compare, served, tiles["rates"]) + "\n\n" + run_classes(workdir)


def report(compare: dict[str, dict[str, Any]], served: dict[int, list[dict[str, Any]]],
           tile_rates: dict[str, float]) -> str:
    split = compare["split"]
    best = {f"{name}_{mode}": min(values) for mode, case in compare.items() for name, values in case["times"].items()}
    cpu = {f"{name}_{mode}": min(values) for mode, case in compare.items() for name, values in case["cpu"].items()}
    mpix = split["pixels"] / 1e6
    model_best = min(best["model_split"], best["model_default"])
    engine = best["engine_split"]  # the engine as the modelserve worker runs it
    efficiency = model_best / engine
    speedup_lzw = best["loop_lzw_default"] / engine
    speedup_zstd = best["loop_zstd_default"] / engine
    fastest = {size: min(runs, key=lambda r: r["serve_seconds"]) for size, runs in served.items()}
    peak = {size: max(r["peak_rss_mb"] for r in runs) for size, runs in served.items()}
    rss_ratio = peak[16384] / peak[4096]
    time_4x = fastest[8192]["serve_seconds"] / fastest[4096]["serve_seconds"]
    time_16x = fastest[16384]["serve_seconds"] / fastest[4096]["serve_seconds"]
    cpu_4x = fastest[8192]["serve_cpu"] / fastest[4096]["serve_cpu"]
    cpu_16x = fastest[16384]["serve_cpu"] / fastest[4096]["serve_cpu"]
    tile = split["tile_size"]

    def check(ok: bool) -> str:
        return "yes" if ok else "**no**"

    def rate(seconds: float) -> str:
        return f"{mpix / seconds:.2f} Mpix/s"

    lines = [
        "## Serving (`otbtf:modelserve`)",
        "",
        f"The FCNN of the training issue (untrained, output `{OUTPUT_NAME}`, rf 64, ef 32) on 4-band uint16 "
        f"images; automatic tiles of {tile[0]}×{tile[1]} output pixels; float32 output, 2 bands, ZSTD level 1 "
        f"unless said otherwise. The engine runs as the `modelserve` worker does: TensorFlow's threads split "
        f"between {split['workers']} tiles computed at once. Comparisons on a 4096² tiled GeoTIFF ({mpix:.1f} output "
        f"Mpix, {split['tiles']} tiles), best of {REPEATS} interleaved runs per method; \"model alone\" is the "
        "faster of the traced model on the tiles in memory one at a time with TensorFlow's default threads and "
        f"{split['workers']} at a time with the worker's. Scaling on VRT mosaics of one 2048² image, each size in its "
        "own process.",
        "",
        "| figure | measured | target | met |",
        "|---|---|---|---|",
        f"| efficiency: engine ÷ model alone on the same tiles in memory | {efficiency:.2f} "
        f"({rate(engine)} vs {rate(model_best)}) | ≥ 0.90 | {check(efficiency >= 0.9)} |",
        f"| speed-up over a sequential loop (GDAL read → predict → write, LZW), same tiles | {speedup_lzw:.2f}× "
        f"(loop {rate(best['loop_lzw_default'])}) | ≥ 1.3× | {check(speedup_lzw >= 1.3)} |",
        f"| peak RSS serving 16384² ÷ 4096² | {rss_ratio:.3f} ({peak[16384]:.0f} MB vs {peak[4096]:.0f} MB) "
        f"| ≤ 1.15 | {check(rss_ratio <= 1.15)} |",
        f"| time for 4× the pixels (8192² ÷ 4096²) | {time_4x:.2f}× (CPU time {cpu_4x:.2f}×) | 3.6–4.4× "
        f"| {check(3.6 <= time_4x <= 4.4)} |",
        f"| time for 16× the pixels (16384² ÷ 4096²) | {time_16x:.2f}× (CPU time {cpu_16x:.2f}×) | 14.4–17.6× "
        f"| {check(14.4 <= time_16x <= 17.6)} |",
        "",
        "Other figures of the same run:",
        "",
        f"- model alone: {rate(best['model_default'])} one tile at a time (default threads), "
        f"{rate(best['model_split'])} {split['workers']} at a time;",
        f"- the same sequential loop writing ZSTD level 1 (the engine's codec): {rate(best['loop_zstd_default'])}; "
        f"the engine is {speedup_zstd:.2f}× faster;",
        f"- the engine with TensorFlow's default threads, one tile at a time: {rate(best['engine_default'])}, "
        f"efficiency {best['model_default'] / best['engine_default']:.2f};",
        f"- the engine writing uncompressed tiles (`CREATION_OPTIONS=COMPRESS=NONE`): "
        f"{rate(best['engine_none_split'])}, efficiency {model_best / best['engine_none_split']:.2f};",
        "- tile size, the engine on one 2048² output region: "
        + ", ".join(f"{rate:.2f} Mpix/s with {size} tiles" for size, rate in tile_rates.items())
        + f"; the automatic tiles are {max(tile_rates.values()) / min(tile_rates.values()):.0f}× faster than the "
        "smallest;",
        f"- CPU time (all threads) for the 4096² image: model alone {cpu['model_split']:.2f} s "
        f"({cpu['model_split'] / best['model_split']:.2f} cores busy), engine {cpu['engine_split']:.2f} s, engine "
        f"uncompressed {cpu['engine_none_split']:.2f} s. When the model alone keeps the cores busy, the reader's and "
        "writer's CPU (mostly ZSTD) cannot be hidden: the efficiency is then at most model CPU ÷ engine CPU = "
        f"{cpu['model_split'] / cpu['engine_split']:.2f}.",
        "",
        "| image | output Mpix | tiles | serve s | Mpix/s | model busy s (all workers) | reader CPU s | writer CPU s "
        "| process CPU s | setup s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, case in fastest.items():
        lines.append(f"| {size}² | {case['pixels'] / 1e6:.1f} | {case['tiles']} | {case['serve_seconds']:.1f} | "
                     f"{case['pixels'] / 1e6 / case['serve_seconds']:.2f} | {case['predict']:.1f} | "
                     f"{case['read_cpu']:.1f} | {case['write_cpu']:.1f} | {case['serve_cpu']:.1f} | "
                     f"{case['setup_seconds']:.1f} | {peak[size]:.0f} |")
    raw = "; ".join(f"{name} {', '.join(f'{v:.2f}' for v in values)}"
                    for mode, case in compare.items() for name, values in
                    ((f"{n} ({mode})", v) for n, v in case["times"].items()))
    lines += ["", f"Raw comparison times (s, per run): {raw}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--child", nargs="+")
    group.add_argument("--classes", type=Path, metavar="WORKDIR", help="run only the 4-class case; print its section")
    args = parser.parse_args()
    if args.classes is not None:
        args.classes.mkdir(parents=True, exist_ok=True)
        print(run_classes(args.classes))
        return
    mode, *rest = args.child
    if mode == "model":
        build_model(Path(rest[0]))
        result: dict[str, Any] = {"ok": True}
    elif mode == "model4":
        build_model(Path(rest[0]), CLASS_NAMES, CLASS_BANDS)
        result = {"ok": True}
    elif mode == "base3":
        build_base_image(Path(rest[0]), CLASS_BANDS)
        result = {"ok": True}
    elif mode == "classes":
        result = child_classes(*rest)
    elif mode == "compare":
        result = child_compare(*rest)
    elif mode == "tiles":
        result = child_tiles(*rest)
    elif mode == "serve":
        result = child_serve(*rest)
    else:
        raise SystemExit(f"unknown child mode {mode}")
    print(json.dumps(result, default=list))


if __name__ == "__main__":
    main()
