"""Serving on Dask (``SCHEDULER=local:2``) against the single-process engine on the same image.

The FCNN and images of :mod:`bench_serving` (untrained, 4-band uint16, automatic tiles),
an 8192² VRT mosaic. Each case runs in its own subprocess, from scratch as a user's job
does: the single process loads TensorFlow and the model, then serves; the Dask run starts
a LocalCluster of 2 worker processes (each loads TensorFlow and the model and gets one of
the 2 cores), serves the regions, mosaics them into the output and stops the cluster.
Both outputs are compared pixel for pixel.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_serving  # noqa: E402 - the benchmark folder is put on the path above

SIZE = 8192
ROUNDS = 3


def child_dask(image: str, model: str, output: str) -> dict[str, Any]:
    """Serve ``image`` on ``local:2`` from scratch; the summary and this process's peak RSS."""
    from otbtf_qgis.core.serving import ServeConfig, SourceConfig, serve

    started = time.perf_counter()
    result = serve(ServeConfig(sources=(SourceConfig((image,)),), model=model, output=output, scheduler="local:2"))
    result["total_seconds"] = time.perf_counter() - started
    result["client_peak_rss_mb"] = bench_serving.peak_rss_mb()
    return result


def child_compare(first: str, second: str) -> dict[str, Any]:
    """Whether two rasters have the same pixels, grid and CRS (read by strips)."""
    import numpy as np
    from osgeo import gdal

    a, b = gdal.Open(first), gdal.Open(second)
    same = (a.RasterXSize, a.RasterYSize, a.RasterCount, a.GetGeoTransform(), a.GetProjection()) == (
        b.RasterXSize, b.RasterYSize, b.RasterCount, b.GetGeoTransform(), b.GetProjection())
    for top in range(0, a.RasterYSize, 1024):
        rows = min(1024, a.RasterYSize - top)
        same = same and bool(np.array_equal(a.ReadAsArray(0, top, a.RasterXSize, rows),
                                            b.ReadAsArray(0, top, b.RasterXSize, rows)))
    return {"identical": same}


def run_child(*args: str) -> dict[str, Any]:
    """Run this benchmark's ``--child ARGS`` in a fresh process."""
    return bench_serving.run_child(*args, script=Path(__file__).resolve())


def run(workdir: Path) -> str:
    """Measure and return the Markdown section."""
    model = workdir / "fcnn"
    bench_serving.run_child("model", str(model))
    base = workdir / "base.tif"
    bench_serving.build_base_image(base)
    image = workdir / f"image{SIZE}.vrt"
    bench_serving.build_mosaic(base, image, SIZE)
    single: list[dict[str, Any]] = []
    dask: list[dict[str, Any]] = []
    identical = True
    for _ in range(ROUNDS):  # interleaved: the machine is shared, each keeps its fastest run
        started = time.perf_counter()
        case = bench_serving.run_child("serve", str(image), str(model), str(workdir / "single.tif"))
        case["total_seconds"] = time.perf_counter() - started
        single.append(case)
        dask.append(run_child("dask", str(image), str(model), str(workdir / "dask.tif")))
        identical = identical and run_child("compare", str(workdir / "single.tif"), str(workdir / "dask.tif"))[
            "identical"]
        for name in ("single.tif", "dask.tif"):
            (workdir / name).unlink(missing_ok=True)
    return report(single, dask, identical)


def report(single: list[dict[str, Any]], dask: list[dict[str, Any]], identical: bool) -> str:
    one = min(single, key=lambda r: r["total_seconds"])
    two = min(dask, key=lambda r: r["seconds"])
    mpix = one["pixels"] / 1e6
    ratio_total = one["total_seconds"] / two["total_seconds"]
    ratio_regions = one["serve_seconds"] / two["regions_seconds"]
    region_mpix = mpix / two["regions"]
    workers_mb = [v / 2**20 for v in two["worker_peak_memory_bytes"].values()]
    startup = two["seconds"] - two["regions_seconds"] - two["mosaic_seconds"]
    lines = [
        "## Serving on Dask (`SCHEDULER=local:2`)",
        "",
        f"The FCNN and images of the serving benchmark, a {SIZE}² image ({mpix:.1f} output Mpix), on this 2-core "
        f"machine: the single-process engine (tiles {one['tile_size'][0]}×{one['tile_size'][1]}, TensorFlow's threads "
        "split between 2 tiles) against a LocalCluster of 2 worker processes with one core each "
        f"({two['regions']} regions of {two['region_tiles']}×{two['region_tiles']} tiles, {region_mpix:.1f} Mpix "
        f"each). Each run from scratch in its own process, best of {ROUNDS} interleaved runs.",
        "",
        "| figure | measured | target | met |",
        "|---|---|---|---|",
        f"| throughput, regions on 2 workers ÷ single-process serving | {ratio_regions:.2f} "
        f"({mpix / two['regions_seconds']:.2f} vs {mpix / one['serve_seconds']:.2f} Mpix/s) | ≥ 0.90 "
        f"| {'yes' if ratio_regions >= 0.9 else '**no**'} |",
        f"| identical outputs (pixels, grid, CRS) | {'yes' if identical else '**no**'} | yes "
        f"| {'yes' if identical else '**no**'} |",
        "",
        f"- whole job, from the start of the process to the published output: single process "
        f"{one['total_seconds']:.1f} s ({mpix / one['total_seconds']:.2f} Mpix/s), local:2 "
        f"{two['total_seconds']:.1f} s ({mpix / two['total_seconds']:.2f} Mpix/s), ratio {ratio_total:.2f};",
        f"- local:2 split: cluster start, version check and model preparation {startup:.1f} s, regions "
        f"{two['regions_seconds']:.1f} s (a region of {region_mpix:.1f} Mpix takes {two['seconds_per_region']:.2f} s "
        f"on its worker, 2 at a time per worker), mosaic into the GeoTIFF {two['mosaic_seconds']:.1f} s "
        f"({mpix / two['mosaic_seconds']:.0f} Mpix/s, on the client, after the workers stopped);",
        f"- peak memory: each worker {', '.join(f'{v:.0f}' for v in sorted(workers_mb))} MB, the client "
        f"{two['client_peak_rss_mb']:.0f} MB; the single process {one['peak_rss_mb']:.0f} MB.",
        "",
        "On one machine the workers share the cores the single process already keeps busy: the ratio shows what "
        "distribution costs per machine (4 model threads on 2 cores, a file per region), and it moves with the "
        "load of a shared machine. Machines added to a cluster add their own cores; the startup and the mosaic "
        "do not shrink with them.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs="+", required=True)
    args = parser.parse_args()
    mode, *rest = args.child
    if mode == "dask":
        result = child_dask(*rest)
    elif mode == "compare":
        result = child_compare(*rest)
    else:
        raise SystemExit(f"unknown child mode {mode}")
    print(json.dumps(result, default=list))


if __name__ == "__main__":
    main()
