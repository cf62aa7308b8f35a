"""The worker protocol, end to end with real worker processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from osgeo import gdal

from otbtf_qgis.core.errors import CancelledError, DependencyError, InputError
from otbtf_qgis.core.jobs.client import CANCEL_GRACE, WorkerError, run_worker
from otbtf_qgis.core.progress import Reporter

PYTHON = sys.executable


class Recorder(Reporter):
    def __init__(self, cancel_after: float | None = None) -> None:
        self.progress_values: list[float] = []
        self.infos: list[str] = []
        self.cancel_after = cancel_after
        self.cancel_time: float | None = None

    def progress(self, fraction: float) -> None:
        self.progress_values.append(fraction)

    def info(self, message: str) -> None:
        self.infos.append(message)

    def is_canceled(self) -> bool:
        if self.cancel_after is not None and self.progress_values and self.progress_values[-1] >= self.cancel_after:
            if self.cancel_time is None:
                self.cancel_time = time.monotonic()
            return True
        return False


def test_progress_messages_and_result(tmp_path: Path):
    out = tmp_path / "diag.tif"
    recorder = Recorder()
    result = run_worker(PYTHON, "diagnostics", {"steps": 6, "step_seconds": 0.06, "output": str(out)}, recorder,
                        outputs=[out])
    assert result == {"steps": 6, "output": str(out)}
    assert recorder.progress_values[-1] == 1.0
    assert recorder.progress_values == sorted(recorder.progress_values) and len(recorder.progress_values) >= 3
    assert recorder.infos == ["half way: step 4 of 6"]
    assert gdal.Open(str(out)).ReadAsArray()[5, 0] == 5


def test_structured_error_is_rebuilt(tmp_path: Path):
    out = tmp_path / "diag.tif"
    with pytest.raises(InputError, match="structured error") as info:
        run_worker(PYTHON, "diagnostics", {"steps": 2, "fail": "error", "output": str(out)}, outputs=[out])
    assert info.value.parameter == "FAIL"
    assert list(tmp_path.iterdir()) == []


def test_bad_parameter_is_reported_with_its_name():
    with pytest.raises(InputError, match="expected an integer") as info:
        run_worker(PYTHON, "diagnostics", {"steps": "many"})
    assert info.value.parameter == "STEPS"


def test_unexpected_exception_carries_traceback():
    with pytest.raises(WorkerError, match="RuntimeError: diagnostics asked to fail") as info:
        run_worker(PYTHON, "diagnostics", {"steps": 1, "fail": "exception"})
    assert "Traceback" in str(info.value)


@pytest.mark.parametrize("fail,expected", [("crash", "killed by signal SIGSEGV"), ("exit", "exited with code 3")])
def test_crash_becomes_clear_error_and_removes_partial_output(tmp_path: Path, fail: str, expected: str):
    out = tmp_path / "diag.tif"
    with pytest.raises(WorkerError, match=expected):
        run_worker(PYTHON, "diagnostics", {"steps": 3, "fail": fail, "output": str(out)}, outputs=[out])
    assert list(tmp_path.iterdir()) == []


def test_cancel_mid_run_stops_within_a_second_and_leaves_no_output(tmp_path: Path):
    out = tmp_path / "diag.tif"
    recorder = Recorder(cancel_after=0.2)
    with pytest.raises(CancelledError):
        run_worker(PYTHON, "diagnostics", {"steps": 100, "step_seconds": 0.1, "output": str(out)}, recorder,
                   outputs=[out])
    stopped = time.monotonic()
    assert recorder.cancel_time is not None and stopped - recorder.cancel_time < 1.0
    assert max(recorder.progress_values) < 0.5
    assert list(tmp_path.iterdir()) == []


class CancelAfter(Reporter):
    """Asks to cancel ``seconds`` after it is made."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def is_canceled(self) -> bool:
        return time.monotonic() >= self.deadline


def test_cancel_of_a_sleeping_worker_escalates_to_sigterm(tmp_path: Path):
    # A step of 30 s ignores the cooperative cancel; SIGTERM is handled only between
    # bytecodes, but time.sleep is interrupted by it, so the job dies within the grace.
    out = tmp_path / "diag.tif"
    start = time.monotonic()
    with pytest.raises(CancelledError):
        run_worker(PYTHON, "diagnostics", {"steps": 2, "step_seconds": 30, "output": str(out)}, CancelAfter(1.0),
                   outputs=[out])
    assert time.monotonic() - start < 3.0
    assert list(tmp_path.iterdir()) == []


def test_cancel_of_a_worker_that_ignores_sigterm_escalates_to_sigkill(tmp_path: Path):
    out = tmp_path / "diag.tif"
    start = time.monotonic()
    with pytest.raises(CancelledError):
        run_worker(PYTHON, "diagnostics", {"steps": 2, "step_seconds": 30, "output": str(out), "fail": "unresponsive"},
                   CancelAfter(1.0), outputs=[out])
    elapsed = time.monotonic() - start
    # Cancel line, CANCEL_GRACE, SIGTERM (ignored), CANCEL_GRACE, SIGKILL.
    assert 1.0 + 2 * CANCEL_GRACE <= elapsed < 4.0
    assert list(tmp_path.iterdir()) == []


def test_missing_interpreter_is_a_clear_error(tmp_path: Path):
    with pytest.raises(WorkerError, match="does not exist") as info:
        run_worker(str(tmp_path / "python9"), "diagnostics", {})
    assert info.value.parameter == "PYTHON" and "OTBTF_QGIS_PYTHON" in str(info.value)


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs the system Python")
def test_missing_tensorflow_says_how_to_install_it():
    import subprocess

    has_tf = subprocess.run(["/usr/bin/python3", "-c", "import tensorflow"], capture_output=True).returncode == 0
    if has_tf:
        pytest.skip("the system Python has TensorFlow")
    with pytest.raises(DependencyError) as info:
        run_worker("/usr/bin/python3", "environmentinfo", {})
    message = str(info.value)
    assert "TensorFlow is not installed in the worker Python '/usr/bin/python3'" in message
    assert "/usr/bin/python3 -m pip install tensorflow-cpu==2.21.0 numpy==1.26.4" in message


def test_unknown_command_lists_available_ones():
    with pytest.raises(WorkerError, match=r"invalid choice.*choose from .*'diagnostics'"):
        run_worker(PYTHON, "nosuchcommand", {})


@pytest.mark.slow
def test_environment_info_reports_tensorflow():
    result = run_worker(PYTHON, "environmentinfo", {})
    assert result["tensorflow"].startswith("2.21")
    assert any(d["type"] == "CPU" for d in result["tensorflow_devices"])
    assert result["gpus"] == []  # these machines have no GPU
