"""Run worker jobs in a separate Python process and follow them.

This is the calling side of :mod:`otbtf_qgis.core.jobs.worker`, used by the Processing
algorithms (TensorFlow must not be imported inside QGIS) and by anyone who wants a job
out of process. It is QGIS-free: progress, messages and cancel go through a
:class:`~otbtf_qgis.core.progress.Reporter`.

Cancel is gentle first, then firm: a ``cancel`` control line (the job stops at its next
check and cleans up), then ``SIGTERM`` after :data:`CANCEL_GRACE` seconds, then
``SIGKILL``. Whatever happens, temporary outputs of the declared output paths are
removed and a cancelled run publishes nothing.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from otbtf_qgis.core.errors import CancelledError, OtbtfError, error_from_dict
from otbtf_qgis.core.jobs.outputs import remove_partials, remove_path
from otbtf_qgis.core.progress import NullReporter, Reporter

#: Seconds between the cancel request and SIGTERM, then between SIGTERM and SIGKILL.
CANCEL_GRACE = 0.4
PYTHON_ENV_VAR = "OTBTF_QGIS_PYTHON"
STDERR_TAIL_LINES = 25


# ``python -m`` would put the working folder first on sys.path, so a checkout there could
# shadow the installed plugin: start from our package root explicitly instead.
_BOOTSTRAP = ("import sys; sys.path[0] = sys.argv.pop(1); "
              "from otbtf_qgis.core.jobs.worker import main; sys.exit(main(sys.argv[1:]))")


class WorkerError(OtbtfError):
    """The worker process failed without a structured error (crash, kill, bad interpreter)."""


def package_root() -> Path:
    """The folder that holds the ``otbtf_qgis`` package (put on the worker's PYTHONPATH)."""
    return Path(__file__).resolve().parents[3]  # <root>/otbtf_qgis/core/jobs/client.py


def worker_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for the worker: ours on PYTHONPATH first, quiet TensorFlow logs, unbuffered I/O."""
    env = dict(os.environ)
    root = str(package_root())
    paths = [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    # QGIS may point these at its own Python; the worker is a different interpreter.
    for key in ("PYTHONHOME", "PYTHONEXECUTABLE"):
        env.pop(key, None)
    if extra:
        env.update(extra)
    return env


def run_worker(python: str, command: str, params: Mapping[str, Any], reporter: Reporter | None = None,
               outputs: Iterable[str | os.PathLike[str]] = (), env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m otbtf_qgis.core COMMAND`` with ``params`` and return its result.

    Args:
        python: The worker interpreter.
        command: A registered worker command (see :mod:`otbtf_qgis.core.jobs.commands`).
        params: The job's config as a JSON-serialisable dict.
        reporter: Receives progress and messages; its ``is_canceled`` is polled.
        outputs: Output paths the job writes; on failure or cancel their temporary
            files are removed (and outputs published during a cancelled run too).
        env: Extra environment variables for the worker.

    Raises:
        CancelledError: the reporter asked to cancel; the worker was stopped.
        OtbtfError: the worker reported an error (rebuilt with its type and parameter).
        WorkerError: the interpreter is missing, or the worker crashed or was killed.
    """
    reporter = reporter or NullReporter()
    output_paths = [Path(p) for p in outputs]
    existed = {p: p.exists() for p in output_paths}
    if not python or not Path(python).exists():
        raise WorkerError(
            f"the Python interpreter '{python}' does not exist. Set a Python with TensorFlow in Processing > "
            f"Options > Providers > OTBTF, or with the {PYTHON_ENV_VAR} environment variable.", "PYTHON")
    args = [python, "-c", _BOOTSTRAP, str(package_root()), command, "--jsonl", "--control-stdin",
            "--params", json.dumps(dict(params))]
    try:
        process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=worker_environment(env), text=True, encoding="utf-8",
                                   errors="replace", start_new_session=True)
    except OSError as exc:
        raise WorkerError(f"cannot start the worker '{python}': {exc.strerror}. Check the interpreter setting.",
                          "PYTHON") from exc
    lines: queue.Queue[str | None] = queue.Queue()
    stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    assert process.stdout is not None and process.stderr is not None
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    stderr_thread = threading.Thread(target=_collect, args=(process.stderr, stderr_tail), daemon=True)
    stderr_thread.start()
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    cancelled = False
    try:
        stdout_open = True
        while stdout_open:
            if not cancelled and reporter.is_canceled():
                cancelled = True
                _stop(process)
            try:
                line = lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                stdout_open = False
                continue
            message = _parse(line)
            if message is None:
                stderr_tail.append(line.rstrip())
                continue
            kind = message.get("type")
            if kind == "progress":
                reporter.progress(float(message.get("value", 0.0)))
            elif kind == "info":
                reporter.info(str(message.get("message", "")))
            elif kind == "warning":
                reporter.warning(str(message.get("message", "")))
            elif kind == "result":
                result = message.get("value") or {}
            elif kind == "error":
                error = message
        returncode = _wait(process)
    except BaseException:
        _stop(process)
        _cleanup(output_paths, existed, published_too=True)
        raise
    finally:
        stderr_thread.join(timeout=1.0)
        for stream in (process.stdin, process.stdout, process.stderr):
            _close(stream)
    if cancelled:
        _cleanup(output_paths, existed, published_too=True)
        raise CancelledError()
    if error is not None:
        _cleanup(output_paths, existed, published_too=False)
        if error.get("error") == "InternalError":
            tail = "\n".join(stderr_tail)
            raise WorkerError(f"the worker failed: {error.get('message')}\n{tail}".rstrip())
        raise error_from_dict(error)
    if returncode != 0 or result is None:
        _cleanup(output_paths, existed, published_too=False)
        raise WorkerError(_crash_message(returncode, list(stderr_tail), python))
    return result


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _collect(stream: IO[str], tail: collections.deque[str]) -> None:
    for line in stream:
        tail.append(line.rstrip())


def _parse(line: str) -> dict[str, Any] | None:
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) and "type" in message else None


def _wait(process: subprocess.Popen[str]) -> int:
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        _kill(process, signal.SIGKILL)
        return process.wait()


def _stop(process: subprocess.Popen[str]) -> None:
    """Ask the worker to cancel; escalate to SIGTERM and SIGKILL if it does not stop."""
    if process.poll() is not None:
        return
    try:
        assert process.stdin is not None
        process.stdin.write(json.dumps({"type": "cancel"}) + "\n")
        process.stdin.flush()
    except (OSError, ValueError):
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            process.wait(timeout=CANCEL_GRACE)
            return
        except subprocess.TimeoutExpired:
            _kill(process, sig)
    process.wait()


def _kill(process: subprocess.Popen[str], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            process.send_signal(sig)
        except ProcessLookupError:
            pass


def _close(stream: IO[str] | None) -> None:
    if stream is not None:
        try:
            stream.close()
        except (OSError, ValueError):
            pass


def _cleanup(outputs: list[Path], existed: dict[Path, bool], published_too: bool) -> None:
    for path in outputs:
        remove_partials(path)
        if published_too and not existed[path] and path.exists():
            remove_path(path)


def _crash_message(returncode: int, tail: list[str], python: str) -> str:
    if returncode < 0:
        try:
            how = f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"was killed by signal {-returncode}"
    else:
        how = f"exited with code {returncode} without a result"
    text = "\n".join(tail[-STDERR_TAIL_LINES:]) or "(no error output)"
    hint = ""
    if "No module named" in text:
        hint = (f"\nThe interpreter '{python}' lacks a package the worker needs; it must be Python >= 3.10 with "
                "numpy and GDAL's Python bindings (osgeo).")
    return f"the worker process {how}.{hint}\nLast lines of its error output:\n{text}"


def default_python_candidates() -> list[str]:
    """Interpreters to try, in order, when none is configured.

    The development checkout's ``.venv`` (the package root resolves through the
    development plugin's symlinks to the checkout), then ``python3`` on PATH, then
    ``/usr/bin/python3``. The Processing side tries the environment that
    ``otbtf:createenvironment`` makes before these.
    """
    import shutil

    candidates = [str(package_root() / ".venv" / "bin" / "python")]
    found = shutil.which("python3")
    if found:
        candidates.append(found)
    candidates.append("/usr/bin/python3")
    if sys.platform == "win32":
        candidates.insert(0, str(Path(sys.prefix) / "python.exe"))
    return candidates
