"""Serving on Dask: the regions of a cluster of 2 worker processes give the outputs of a single run."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from otbtf_qgis.core.errors import CancelledError, DependencyError, InputError, ModelError
from otbtf_qgis.core.io.windows import Window
from otbtf_qgis.core.jobs.configs.modelserve import serve_config_from_text
from otbtf_qgis.core.progress import Reporter
from otbtf_qgis.core.serving import ServeConfig, SourceConfig, serve
from otbtf_qgis.core.serving import distributed as dask_serving
from otbtf_qgis.core.serving.regions import RegionFiles, fingerprint, region_side, region_windows, regions_root
from tests.core.conftest import make_raster

distributed = pytest.importorskip("distributed")

GT = (500000.0, 10.0, 0.0, 4500000.0, 0.0, -10.0)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes shared by the tests of this module (its scheduler runs here).

    The tests read its scheduler's state rather than open a second client in this process.
    """
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as local:
        yield local


def workers(cluster) -> dict:
    """The scheduler's view of the workers: address -> worker state (pid, tasks being processed)."""
    return dict(cluster.scheduler.workers)


@pytest.fixture
def case(unet_model, tmp_path) -> dict:
    """A 4-band image with a nodata corner and the U-Net: a 128x112 grid of 4x4 tiles of 32, 16 regions of one tile."""
    folder, _ = unet_model
    data = np.random.default_rng(5).integers(1, 1000, size=(130, 150, 4)).astype(np.uint16)
    data[:40, :60] = 0
    path = make_raster(tmp_path / "xs.tif", data, GT, nodata=0)
    return {"sources": (SourceConfig((str(path),)),), "model": str(folder), "tile_size": 32}


def address(cluster) -> str:
    return cluster.scheduler_address


def read(path: Path) -> tuple[np.ndarray, gdal.Dataset]:
    dataset = gdal.Open(str(path))
    return dataset.ReadAsArray(), dataset


def assert_same_raster(path: Path, reference: Path) -> None:
    """Pixels, grid, CRS, nodata, descriptions, metadata, palette and class names all equal."""
    pixels, dataset = read(path)
    expected, other = read(reference)
    np.testing.assert_array_equal(pixels, expected)
    assert dataset.GetGeoTransform() == other.GetGeoTransform()
    assert dataset.GetProjection() == other.GetProjection()
    assert dataset.GetMetadata() == other.GetMetadata()
    assert dataset.GetMetadata("IMAGE_STRUCTURE") == other.GetMetadata("IMAGE_STRUCTURE")
    for number in range(1, dataset.RasterCount + 1):
        band, expected_band = dataset.GetRasterBand(number), other.GetRasterBand(number)
        assert band.GetNoDataValue() == expected_band.GetNoDataValue()
        assert band.GetDescription() == expected_band.GetDescription()
        assert band.GetBlockSize() == expected_band.GetBlockSize()
        assert band.GetRasterCategoryNames() == expected_band.GetRasterCategoryNames()
        table, expected_table = band.GetColorTable(), expected_band.GetColorTable()
        assert (table is None) == (expected_table is None)
        if table is not None:
            assert [table.GetColorEntry(k) for k in range(table.GetCount())] == [
                expected_table.GetColorEntry(k) for k in range(expected_table.GetCount())]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------- pure parts


def test_scheduler_values():
    source = (SourceConfig(("a.tif",)),)
    assert ServeConfig(source, "m", "o.tif", scheduler="local:2").scheduler == "local:2"
    for good in ("tcp://10.0.0.5:8786", "tls://scheduler.example:8786", "localhost:8786"):
        assert ServeConfig(source, "m", "o.tif", scheduler=good).scheduler == good
    forms = ("Accepted: local:N (N >= 1 worker processes on this machine), a Dask scheduler address such as "
             "tcp://host:8786, or nothing to serve in this process.")
    for bad, message in (("local:0", "'local:0' starts no worker: give local:N with N >= 1 (e.g. local:2). "),
                         ("local:x", "'local:x' is not local:N with a whole number N >= 1 (e.g. local:2). "),
                         ("local", "'local' is not local:N with a whole number N >= 1 (e.g. local:2). "),
                         ("my cluster", "'my cluster' is not a scheduler. ")):
        with pytest.raises(InputError) as error:
            ServeConfig(source, "m", "o.tif", scheduler=bad)
        assert (error.value.parameter, error.value.message) == ("SCHEDULER", message + forms)
    assert serve_config_from_text(["a.tif"], "m", "o.tif", scheduler=" local:3 ").scheduler == "local:3"


def test_region_side_gives_several_regions_per_worker_of_bounded_size():
    # 8x8 tiles of 1024: 8 regions wished -> 3x3 tiles (3x3 regions); 2x2 would give 16, 4x4 only 4
    assert region_side((8192, 8192), (1024, 1024), 8, 64 << 20) == 3
    assert region_side((8192, 8192), (1024, 1024), 1, 64 << 20) == 8
    assert region_side((8192, 8192), (1024, 1024), 1, 16 << 20) == 4  # 4x4 tiles of 1 Mpix = 16 Mpix
    assert region_side((100, 100), (512, 512), 8, 64 << 20) == 1  # one tile: one region
    assert region_side((128, 112), (32, 32), 1000, 64 << 20) == 1
    windows = region_windows((150, 100), (32, 32), 2)
    assert [(c, r) for c, r, _ in windows] == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    assert windows[2][2] == Window(128, 0, 22, 64) and windows[4][2] == Window(64, 64, 64, 36)
    covered = np.zeros((100, 150), int)
    for _, _, window in windows:
        covered[window.row_off:window.row_end, window.col_off:window.col_end] += 1
    assert (covered == 1).all()


def test_fingerprint_follows_what_changes_pixels(case, tmp_path):
    config = ServeConfig(output=str(tmp_path / "a.tif"), **case)
    same = ServeConfig(output=str(tmp_path / "b.tif"), scheduler="local:4", cog=True, **case)
    assert fingerprint(config) == fingerprint(same)
    assert fingerprint(config) != fingerprint(ServeConfig(output=str(tmp_path / "a.tif"), background=3, **case))
    before = fingerprint(config)
    for changed in (Path(case["sources"][0].paths[0]), Path(case["model"]) / "saved_model.pb"):
        os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
        assert fingerprint(config) != before, changed
        before = fingerprint(config)
    from tests.core.serving.test_serve_options import polygon_layer, rectangle

    mask = polygon_layer(tmp_path / "mask.gpkg", [rectangle(500200.0, 4499000.0, 500800.0, 4499600.0)])
    masked = ServeConfig(output=str(tmp_path / "a.tif"), mask=f"{mask}|layername=mask", **case)
    before = fingerprint(masked)
    assert before != fingerprint(config)
    os.utime(mask, ns=(mask.stat().st_atime_ns, mask.stat().st_mtime_ns + 10**9))
    assert fingerprint(masked) != before


# ------------------------------------------------------------------------- on a cluster


def test_the_cluster_gives_the_single_run_outputs(cluster, case, tmp_path):
    options = {"output_type": "int16", "creation_options": ("COMPRESS=LZW",), **case}
    plain = serve(ServeConfig(output=str(tmp_path / "plain.tif"), output_classes=str(tmp_path / "plain_classes.tif"),
                              **options))
    result = serve(ServeConfig(output=str(tmp_path / "out.tif"), output_classes=str(tmp_path / "classes.tif"),
                               scheduler=address(cluster), **options))
    assert_same_raster(tmp_path / "out.tif", tmp_path / "plain.tif")
    assert_same_raster(tmp_path / "classes.tif", tmp_path / "plain_classes.tif")
    assert (tmp_path / "classes.qml").read_text() == (tmp_path / "plain_classes.qml").read_text()
    assert (result["regions"], result["regions_reused"], result["regions_computed"]) == (16, 0, 16)
    assert result["workers"] == 2
    assert result["region_tiles"] == 1 and result["tiles"] == plain["tiles"] == 16
    assert result["skipped_tiles"] == plain["skipped_tiles"] > 0
    for key in ("width", "height", "bands", "geotransform", "tile_size", "output_names", "nodata"):
        assert result[key] == plain[key]
    assert set(result["worker_peak_memory_bytes"]) <= set(workers(cluster))
    assert hidden(tmp_path) == []  # the region folder is gone
    cog = serve(ServeConfig(output=str(tmp_path / "cog.tif"), scheduler=address(cluster), cog=True, **options))
    assert cog["regions_computed"] == 16
    assert gdal.Open(str(tmp_path / "cog.tif")).GetMetadata("IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    np.testing.assert_array_equal(read(tmp_path / "cog.tif")[0], read(tmp_path / "plain.tif")[0])


def test_the_cluster_serves_an_extent_inside_a_mask_with_scaled_outputs_and_a_class_map_alone(cluster, case,
                                                                                               tmp_path):
    from tests.core.serving.test_serve_options import polygon_layer, rectangle

    mask = polygon_layer(tmp_path / "mask.gpkg", [rectangle(500200.0, 4499000.0, 500800.0, 4499600.0)])
    part = {"extent": (500305.0, 4499095.0, 501003.0, 4499702.0), "mask": str(mask), **case}
    plain = serve(ServeConfig(output=str(tmp_path / "plain.tif"), output_classes=str(tmp_path / "plain_classes.tif"),
                              output_type="scaled_uint8", **part))
    result = serve(ServeConfig(output=str(tmp_path / "out.tif"), output_classes=str(tmp_path / "classes.tif"),
                               output_type="scaled_uint8", scheduler=address(cluster), **part))
    assert_same_raster(tmp_path / "out.tif", tmp_path / "plain.tif")
    assert_same_raster(tmp_path / "classes.tif", tmp_path / "plain_classes.tif")
    dataset = gdal.Open(str(tmp_path / "out.tif"))
    band = dataset.GetRasterBand(1)
    assert (band.GetScale(), band.GetOffset()) == (0.004, 0.0)
    band = dataset = None
    for key in ("width", "height", "geotransform", "region", "grid_size", "tiles", "skipped_tiles", "nodata",
                "output_type", "scale", "mask", "bands", "output_names"):
        assert result[key] == plain[key], key
    assert result["nodata"] == 255 and result["scale"] == 0.004
    assert result["width"] < result["grid_size"][0] and result["skipped_tiles"] > 0
    alone = serve(ServeConfig(output="", output_classes=str(tmp_path / "alone.tif"), scheduler=address(cluster),
                              **part))
    assert alone["output"] is None and alone["regions_computed"] == alone["regions"]
    assert_same_raster(tmp_path / "alone.tif", tmp_path / "plain_classes.tif")
    assert not (tmp_path / ".alone.tif.regions").exists() and hidden(tmp_path) == []


class CancelAt(Reporter):
    """Cancels once the progress reaches ``fraction``."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.last = 0.0

    def progress(self, fraction: float) -> None:
        self.last = max(self.last, fraction)

    def is_canceled(self) -> bool:
        return self.last >= self.fraction


def test_cancel_publishes_nothing_and_a_new_run_computes_only_the_missing_regions(cluster, case, tmp_path):
    serve(ServeConfig(output=str(tmp_path / "plain.tif"), **case))
    config = ServeConfig(output=str(tmp_path / "out.tif"), output_classes=str(tmp_path / "classes.tif"),
                         scheduler=address(cluster), **case)
    with pytest.raises(CancelledError):
        serve(config, CancelAt(0.92))  # while writing OUTPUT: every region is complete
    assert not (tmp_path / "out.tif").exists() and not (tmp_path / "classes.tif").exists()
    folder = regions_root(tmp_path / "out.tif") / fingerprint(config)
    assert len(list(folder.glob("r_*.json"))) == 16 and not list(folder.glob(".*partial*"))
    RegionFiles.of(folder, 1, 0, True, True).summary.unlink()  # incomplete: no summary
    RegionFiles.of(folder, 2, 1, True, True).classes.unlink()  # incomplete: no class map
    result = serve(config)
    assert (result["regions"], result["regions_reused"], result["regions_computed"]) == (16, 14, 2)
    assert_same_raster(tmp_path / "out.tif", tmp_path / "plain.tif")
    assert hidden(tmp_path) == []
    with pytest.raises(CancelledError):
        serve(config, CancelAt(0.2))  # after 3 regions of 16
    assert hidden(tmp_path) == [".out.tif.regions"]  # complete regions stay for the next run
    assert (tmp_path / "out.tif").exists()  # the earlier output stays as it was


def test_a_worker_killed_mid_run_changes_nothing(cluster, case, tmp_path):
    serve(ServeConfig(output=str(tmp_path / "plain.tif"), **case))

    class KillAfterFirstRegion(Reporter):
        def __init__(self) -> None:
            self.killed: str | None = None
            self.regions: list[str] = []

        def progress(self, fraction: float) -> None:
            if fraction > 0.05 and self.killed is None:  # one region complete: kill a worker serving one
                busy = [state for state in workers(cluster).values() if state.processing]
                self.killed = busy[0].address
                self.regions = [str(task.key) for task in busy[0].processing]
                os.kill(busy[0].pid, signal.SIGKILL)

    reporter = KillAfterFirstRegion()
    result = serve(ServeConfig(output=str(tmp_path / "out.tif"), scheduler=address(cluster), **case), reporter)
    assert reporter.killed is not None and reporter.killed not in workers(cluster)  # it is gone
    assert any(key.startswith("otbtf-region-") for key in reporter.regions)  # while it was serving a region
    assert result["regions_computed"] == 16
    assert_same_raster(tmp_path / "out.tif", tmp_path / "plain.tif")
    assert hidden(tmp_path) == []
    deadline = time.monotonic() + 60
    while len(workers(cluster)) < 2 and time.monotonic() < deadline:  # the nanny restarts it
        time.sleep(0.2)
    assert len(workers(cluster)) == 2


def test_workers_with_other_versions_are_refused(cluster, case, tmp_path, monkeypatch):
    real = dask_serving.component_versions()
    monkeypatch.setattr(dask_serving, "component_versions", lambda: {**real, "otbtf_qgis": "9.9.9"})
    with pytest.raises(DependencyError) as error:
        serve(ServeConfig(output=str(tmp_path / "out.tif"), scheduler=address(cluster), **case))
    worker = sorted(workers(cluster))[0]
    assert error.value.parameter == "SCHEDULER"
    assert error.value.message == (
        f"the Dask worker {worker} runs otbtf_qgis {real['otbtf_qgis']} with TensorFlow {real['tensorflow']}, but "
        f"this client runs otbtf_qgis 9.9.9 with TensorFlow {real['tensorflow']}. Install the same versions on every "
        "worker and restart the workers.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xs.tif"]


def test_errors_raised_on_a_worker_keep_their_parameter(cluster, case, tmp_path):
    import pickle

    error = pickle.loads(pickle.dumps(InputError("bad value", "RFIELDS")))
    assert (type(error), error.message, error.parameter) == (InputError, "bad value", "RFIELDS")
    (tmp_path / "not_a_model").mkdir()
    settings = {**case, "model": str(tmp_path / "not_a_model")}
    with pytest.raises(ModelError) as raised:  # raised while a worker prepares the job
        serve(ServeConfig(output=str(tmp_path / "out.tif"), scheduler=address(cluster), **settings))
    assert raised.value.parameter == "MODEL" and "is not a SavedModel" in raised.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_model", "xs.tif"]


def test_an_unreachable_scheduler_fails_within_the_timeout(case, tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(dask_serving, "CONNECT_TIMEOUT", 2.0)
    started = time.monotonic()
    with pytest.raises(InputError) as error:
        serve(ServeConfig(output=str(tmp_path / "out.tif"), scheduler=f"tcp://127.0.0.1:{port}", **case))
    assert time.monotonic() - started < 10
    assert error.value.parameter == "SCHEDULER"
    assert error.value.message.startswith(f"cannot reach the Dask scheduler at 'tcp://127.0.0.1:{port}' within 2 s (")
    assert error.value.message.endswith("). Start the scheduler and its workers, check the address, or use local:N "
                                        "to start workers on this machine.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xs.tif"]


@pytest.mark.slow
def test_local_cluster_through_the_worker_command(case, tmp_path):
    import sys

    from otbtf_qgis.core.jobs.client import run_worker
    from otbtf_qgis.core.jobs.codec import config_to_dict

    serve(ServeConfig(output=str(tmp_path / "plain.tif"), **case))
    config = ServeConfig(output=str(tmp_path / "out.tif"), scheduler="local:2", **case)
    result = run_worker(sys.executable, "modelserve", config_to_dict(config), outputs=[tmp_path / "out.tif"])
    assert (result["scheduler"], result["workers"], result["regions_computed"]) == ("local:2", 2, 16)
    assert result["model_workers"] == 1  # one core per worker: one tile at a time
    assert_same_raster(tmp_path / "out.tif", tmp_path / "plain.tif")
    assert hidden(tmp_path) == []
