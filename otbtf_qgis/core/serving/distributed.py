"""Serving on a Dask cluster: regions of the output grid are tasks, mosaicked into the outputs.

``ServeConfig.scheduler`` chooses the cluster: ``local:N`` starts a
``distributed.LocalCluster`` of N worker processes on this machine for the job; an address
(``tcp://host:8786``) uses a running cluster, whatever started it (``dask scheduler`` and
``dask worker`` by hand, dask-jobqueue on SLURM/PBS, dask-kubernetes). The workers must see
the sources, the model and the output folder under the same paths (shared storage), and
run the same versions of otbtf_qgis and TensorFlow as this client (checked).

The client prepares the job on every worker (each keeps its plan: the model loaded and
traced once per job), cuts the grid into regions of whole tiles
(:mod:`~otbtf_qgis.core.serving.regions`) and submits one task per region not yet
complete. A worker serves as many regions at a time as it has threads (two for
``local:N``: one region computes while the other reads or writes); TensorFlow gets the
cores the worker shares with the other workers of its machine, divided among its threads.
Each region is written atomically into the job's hidden region folder beside the output;
Dask reruns the tasks of a worker that dies on another one. Progress follows the regions
as they complete; cancel (or an error) cancels the tasks and publishes nothing, leaving
the complete regions for the next run of the same job. Finally the region files are
mosaicked into OUTPUT and OUTPUT_CLASSES exactly as a single-process run writes them, and
the region folder is removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import otbtf_qgis
from otbtf_qgis.core.errors import DependencyError, InputError, OtbtfError
from otbtf_qgis.core.io.pyotb_inputs import ScratchRasters
from otbtf_qgis.core.io.windows import Window, intersection
from otbtf_qgis.core.jobs.configs.modelserve import ServeConfig, local_workers
from otbtf_qgis.core.jobs.outputs import ensure_writable_parent
from otbtf_qgis.core.progress import NullReporter, Reporter
from otbtf_qgis.core.serving.regions import (
    RegionFiles,
    fingerprint,
    prepare_region_folder,
    publish_mosaics,
    region_side,
    region_windows,
    regions_root,
    remove_region_folder,
)

if TYPE_CHECKING:
    from distributed import Client, Future

    from otbtf_qgis.core.serving.plan import ServingPlan

#: Regions a worker of ``local:N`` serves at once: one computes while another reads or writes
#: (a region's first read and last write leave the model idle), which is faster than one.
TASKS_PER_WORKER = 2
#: Seconds to reach a scheduler given by address.
CONNECT_TIMEOUT = 10.0
#: Seconds to wait for the first worker of a cluster given by address.
WORKER_TIMEOUT = 60.0
#: Regions wished per worker: enough to balance the load and lose little to a dead worker.
REGIONS_PER_WORKER = 8
#: Most output pixels in one region (~5 s of one 2-core machine at 14 Mpix/s).
MAX_REGION_PIXELS = 64 << 20
_POLL_SECONDS = 0.05


@functools.lru_cache(maxsize=1)
def _tensorflow_version() -> str:
    distributions = importlib.metadata.packages_distributions().get("tensorflow", [])
    for name in distributions:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return "not installed"


def component_versions() -> dict[str, str]:
    """The versions a worker must share with the client: otbtf_qgis and TensorFlow (read without importing it)."""
    return {"otbtf_qgis": otbtf_qgis.__version__, "tensorflow": _tensorflow_version()}


def _check_versions(worker: str, theirs: dict[str, str], ours: dict[str, str]) -> None:
    if theirs != ours:
        raise DependencyError(
            f"the Dask worker {worker} runs otbtf_qgis {theirs.get('otbtf_qgis')} with TensorFlow "
            f"{theirs.get('tensorflow')}, but this client runs otbtf_qgis {ours.get('otbtf_qgis')} with TensorFlow "
            f"{ours.get('tensorflow')}. Install the same versions on every worker and restart the workers.",
            "SCHEDULER")


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _worker_facts() -> dict[str, Any]:
    """Run on every worker by the client: its versions and cores."""
    return {"versions": component_versions(), "cores": _cores()}


@dataclasses.dataclass(frozen=True)
class _Job:
    """What every task of one distributed run receives."""

    config: ServeConfig
    key: str
    folder: str
    with_classes: bool
    with_output: bool
    versions: dict[str, str]
    workers_per_host: dict[str, int]


# ------------------------------------------------------------------------ worker side
_PLANS: dict[str, ServingPlan] = {}
_PLANS_LOCK = threading.Lock()


def _configure_tensorflow(cores: int, tasks: int) -> int | None:
    """Give TensorFlow the worker's share of the cores; return the tiles each task computes at once.

    :func:`~otbtf_qgis.core.models.saved_model.configure_threads` assumes the process owns
    the machine and serves one region at a time; a Dask worker owns ``cores`` of it and
    serves ``tasks`` regions at once (its threads), so each region gets ``cores / tasks``.
    ``None``: TensorFlow had started already (its settings stay) or a GPU computes.
    """
    import tensorflow as tf

    from otbtf_qgis.core.models.saved_model import CONCURRENT_TILES, share_gpus

    if share_gpus():
        return None
    per_task = max(1, cores // tasks)
    tiles = CONCURRENT_TILES if per_task >= CONCURRENT_TILES else 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, per_task // tiles))
        tf.config.threading.set_inter_op_parallelism_threads(tiles * tasks)
    except RuntimeError:
        return None
    return tiles


def _worker_plan(job: _Job) -> ServingPlan:
    """The plan of ``job`` in this worker process: prepared by its first task, then reused."""
    from distributed import get_worker
    from distributed.comm import get_address_host

    from otbtf_qgis.core.serving.plan import check_class_map, prepare

    worker = get_worker()
    address = worker.address
    _check_versions(address, component_versions(), job.versions)
    with _PLANS_LOCK:
        plan = _PLANS.get(job.key)
        if plan is None:
            for old in _PLANS.values():  # one job at a time: free the previous model
                old.close()
            _PLANS.clear()
            share = max(1, _cores() // job.workers_per_host.get(get_address_host(address), 1))
            tiles = _configure_tensorflow(share, worker.state.nthreads)
            plan = prepare(job.config)
            if job.with_classes:
                check_class_map(plan)
            if tiles is not None:
                plan.workers = tiles
            _PLANS[job.key] = plan
    return plan


def _describe(job: _Job) -> dict[str, Any]:
    """Task: prepare the plan on a worker; return the grid and what the summary reports of it.

    ``area`` is the part of the grid to serve (all of it, or EXTENT snapped to the grid) and
    ``area_geotransform`` its geotransform.
    """
    from otbtf_qgis.core.io.raster import window_geotransform
    from otbtf_qgis.core.serving.stream import describe_plan

    plan = _worker_plan(job)
    area = plan.region(None)
    return {
        **describe_plan(plan),
        "area": [area.col_off, area.row_off, area.width, area.height],
        "area_geotransform": list(window_geotransform(plan.geotransform, area)),
        "width": plan.geometry.width, "height": plan.geometry.height, "crs_wkt": plan.crs_wkt,
    }


def _peak_memory() -> int | None:
    if sys.platform == "win32":
        return None
    import resource

    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kilobytes elsewhere


def _serve_region(job: _Job, column: int, row: int, window: Window) -> dict[str, Any]:
    """Task: serve one region into its files in the job's folder; write its summary last."""
    from distributed import get_worker

    from otbtf_qgis.core.serving.stream import serve_plan

    plan = _worker_plan(job)
    files = RegionFiles.of(Path(job.folder), column, row, job.with_classes, job.with_output)
    summary = serve_plan(plan, str(files.output) if files.output else "", window,
                         str(files.classes) if files.classes else "")
    summary.update(worker=get_worker().address, peak_memory_bytes=_peak_memory())
    files.write_summary(summary)
    return summary


# ------------------------------------------------------------------------ client side
@contextlib.contextmanager
def _client(scheduler: str) -> Iterator[Client]:
    """A client of a LocalCluster started for ``local:N``, or of the scheduler at the address."""
    from distributed import Client, LocalCluster

    count = local_workers(scheduler)
    if count is not None:
        with LocalCluster(n_workers=count, threads_per_worker=TASKS_PER_WORKER, processes=True,
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            yield client
        return
    address = scheduler.strip()
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at '{address}' within {CONNECT_TIMEOUT:g} s ({exc}). "
                         "Start the scheduler and its workers, check the address, or use local:N to start "
                         "workers on this machine.", "SCHEDULER") from exc
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
        except TimeoutError as exc:
            raise InputError(f"the Dask scheduler at '{address}' has no worker after {WORKER_TIMEOUT:g} s. Start "
                             f"workers (e.g. dask worker {address} --nthreads 2).", "SCHEDULER") from exc
        yield client
    finally:
        client.close()


def _check_workers(client: Client) -> dict[str, int]:
    """Check every worker's versions against ours; return the number of workers per host."""
    from distributed.comm import get_address_host

    ours = component_versions()
    facts = client.run(_worker_facts)
    per_host: dict[str, int] = {}
    for address, worker in sorted(facts.items()):
        _check_versions(address, worker["versions"], ours)
        host = get_address_host(address)
        per_host[host] = per_host.get(host, 0) + 1
    return per_host


def _result(future: Future[Any], reporter: Reporter) -> Any:
    while not future.done():
        reporter.check_canceled()
        time.sleep(_POLL_SECONDS)
    return future.result()


def _prepare_workers(client: Client, job: _Job, reporter: Reporter) -> dict[str, Any]:
    """Prepare the plan on every worker at once (loading TensorFlow and the model); return the grid.

    A worker that leaves meanwhile does not hold the job up: its preparation may run elsewhere.
    """
    run = uuid.uuid4().hex[:8]
    futures = [client.submit(_describe, job, pure=False, workers=[worker], allow_other_workers=True,
                             key=f"otbtf-prepare-{job.key}-{number}-{run}")
               for number, worker in enumerate(sorted(client.scheduler_info(n_workers=-1)["workers"]))]
    try:
        grids: list[dict[str, Any]] = [_result(future, reporter) for future in futures]
    except BaseException:
        client.cancel(futures)
        raise
    return grids[0]


def _serve_regions(client: Client, job: _Job, todo: list[tuple[int, int, Window]], done: int, total: int,
                   reporter: Reporter) -> list[dict[str, Any]]:
    """Submit a task per region of ``todo``; return their summaries as they complete."""
    from distributed import KilledWorker, as_completed

    run = uuid.uuid4().hex[:8]
    futures = [client.submit(_serve_region, job, column, row, window, pure=False,
                             key=f"otbtf-region-{job.key}-{column}-{row}-{run}") for column, row, window in todo]
    summaries: list[dict[str, Any]] = []
    completed = as_completed(futures)
    try:
        while True:
            reporter.check_canceled()
            if completed.has_ready():
                for future in completed.next_batch(block=False):
                    try:
                        summaries.append(future.result())
                    except KilledWorker as exc:
                        raise OtbtfError(f"the Dask workers serving a region kept dying ({exc}); they may lack "
                                         "memory. Give the workers more memory or serve with TILE_SIZE smaller.",
                                         "SCHEDULER") from exc
                    reporter.progress((done + len(summaries)) / total)
            elif completed.is_empty():
                return summaries
            else:
                time.sleep(_POLL_SECONDS)
    except BaseException:
        client.cancel(futures)
        raise


def serve_distributed(config: ServeConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Serve ``config`` on the Dask cluster of ``config.scheduler``; outputs identical to :func:`serve`.

    Returns:
        The summary of a single run (size, grid, tiles, timings), plus ``scheduler``,
        ``workers``, ``regions``, ``regions_reused``, ``regions_computed``,
        ``region_tiles`` (side of a region, in tiles), ``regions_seconds``, ``mosaic_seconds``,
        ``seconds_per_region`` (mean time of a computed region on its worker) and
        ``worker_peak_memory_bytes``.

    Raises:
        InputError: SCHEDULER is malformed or unreachable, or a setting does not fit.
        DependencyError: a worker runs other versions of otbtf_qgis or TensorFlow (SCHEDULER).
        CancelledError: the reporter asked to stop (nothing is published).
    """
    reporter = reporter or NullReporter()
    started = time.perf_counter()
    # The region files sit beside the probabilities, or beside the class map without them.
    anchor = config.output or config.output_classes
    if config.output:
        ensure_writable_parent(Path(config.output), "OUTPUT")
    if config.output_classes:
        ensure_writable_parent(Path(config.output_classes), "OUTPUT_CLASSES")
    with ScratchRasters(Path(anchor).resolve().parent, reporter) as scratch:
        task_config = dataclasses.replace(config, scheduler="", cog=False, sources=tuple(
            dataclasses.replace(source, paths=scratch.paths(source.paths, "SOURCES")) for source in config.sources))
        key = fingerprint(task_config)
        reporter.info(f"starting the Dask cluster local:{local_workers(config.scheduler)}"
                      if local_workers(config.scheduler) else f"connecting to the Dask scheduler {config.scheduler}")
        with _client(config.scheduler) as client:
            per_host = _check_workers(client)
            workers = sum(per_host.values())
            folder = regions_root(anchor) / key
            job = _Job(task_config, key, str(folder), bool(config.output_classes), bool(config.output),
                       component_versions(), per_host)
            grid = _prepare_workers(client, job, reporter)
            prepare_region_folder(anchor, key)
            reporter.progress(0.05)
            area = Window(*grid["area"])
            size, tile = (grid["width"], grid["height"]), (grid["tile_size"][0], grid["tile_size"][1])
            side = region_side((area.width, area.height), tile, REGIONS_PER_WORKER * workers, MAX_REGION_PIXELS)
            # Regions of whole tiles of the grid's tiling, cut to the area (EXTENT): the tiles
            # a region computes are those of a single run.
            regions = [(column, row, part) for column, row, window in region_windows(size, tile, side)
                       if (part := intersection(window, area)) is not None]
            complete: list[dict[str, Any]] = []
            todo = []
            for column, row, window in regions:
                summary = RegionFiles.of(folder, column, row, job.with_classes, job.with_output).read_summary()
                if summary is not None:
                    complete.append(summary)
                else:
                    todo.append((column, row, window))
            reporter.info(f"{len(regions)} regions of {side}x{side} tiles on {workers} Dask worker(s); "
                          f"{len(complete)} complete from an earlier run of this job")
            regions_started = time.perf_counter()
            try:
                computed = _serve_regions(client, job, todo, len(complete), len(regions), reporter.sub(0.05, 0.9))
            except BaseException:
                if not any(folder.glob("r_*.json")):  # nothing to resume from
                    remove_region_folder(anchor, key)
                raise
            regions_seconds = time.perf_counter() - regions_started
        summaries = complete + computed
        mosaic_started = time.perf_counter()
        region_files = [RegionFiles.of(folder, column, row, job.with_classes, job.with_output)
                        for column, row, _ in regions]
        outputs: list[tuple[list[Path], str, str]] = []
        if config.output:
            outputs.append(([files.output for files in region_files if files.output is not None],
                            config.output, "OUTPUT"))
        if config.output_classes:
            outputs.append(([files.classes for files in region_files if files.classes is not None],
                            config.output_classes, "OUTPUT_CLASSES"))
        mosaic_grid = {"width": area.width, "height": area.height, "geotransform": grid["area_geotransform"],
                       "crs_wkt": grid["crs_wkt"]}
        publish_mosaics(outputs, mosaic_grid, config.creation_options, config.cog, reporter.sub(0.9, 1.0))
    remove_region_folder(anchor, key)
    reporter.progress(1.0)
    seconds = time.perf_counter() - started
    peaks: dict[str, int] = {}
    for summary in computed:
        if summary.get("peak_memory_bytes") is not None:
            peaks[summary["worker"]] = max(peaks.get(summary["worker"], 0), summary["peak_memory_bytes"])
    return {
        "output": config.output or None, "output_classes": config.output_classes or None,
        **{k: v for k, v in grid.items() if k not in ("crs_wkt", "area", "area_geotransform")},
        "width": area.width, "height": area.height, "geotransform": grid["area_geotransform"],
        "region": list(grid["area"]),
        "tiles": sum(s["tiles"] for s in summaries), "skipped_tiles": sum(s["skipped_tiles"] for s in summaries),
        "seconds": round(seconds, 3),
        "mpix_per_second": round(area.width * area.height / 1e6 / max(seconds, 1e-9), 3),
        "scheduler": config.scheduler, "workers": workers, "regions": len(regions),
        "regions_reused": len(complete), "regions_computed": len(computed), "region_tiles": side,
        "regions_seconds": round(regions_seconds, 3), "mosaic_seconds": round(time.perf_counter() - mosaic_started, 3),
        "seconds_per_region": round(sum(s["seconds"] for s in computed) / len(computed), 3) if computed else None,
        "worker_peak_memory_bytes": peaks,
    }
