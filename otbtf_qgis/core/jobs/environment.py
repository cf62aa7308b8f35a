"""Create a worker environment: a virtual environment with TensorFlow for the plugin.

QGIS's own Python usually lacks TensorFlow, and installing it there risks breaking QGIS.
Instead we make a virtual environment *on* that Python, with ``--system-site-packages``
so that GDAL's bindings (``osgeo``) and numpy of the system stay visible, and install the
pinned TensorFlow into it. The worker then runs in that environment. Creating it again
reuses what is there (pip skips satisfied requirements).

The device decides the TensorFlow package: ``tensorflow-cpu`` for the CPU, and on Linux
with an NVIDIA driver ``tensorflow[and-cuda]`` at the same pinned version (it brings the
CUDA libraries as pip packages). ``auto`` picks CUDA when ``nvidia-smi`` runs and lists
a GPU.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from otbtf_qgis.core.errors import CancelledError, DependencyError, InputError
from otbtf_qgis.core.jobs.client import run_worker
from otbtf_qgis.core.jobs.worker import TENSORFLOW_REQUIREMENT
from otbtf_qgis.core.progress import NullReporter, Reporter

DEFAULT_REQUIREMENTS: tuple[str, ...] = tuple(TENSORFLOW_REQUIREMENT.split())
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)
#: A TensorFlow CPU requirement (``tensorflow-cpu==2.21.0``): the package name, then the version part.
_TENSORFLOW_CPU = re.compile(r"^tensorflow[-_]cpu(?P<version>(?:[=<>!~].*)?)$", re.IGNORECASE)


def nvidia_gpu_present() -> bool:
    """Whether an NVIDIA driver is installed and sees a GPU: ``nvidia-smi -L`` runs and lists one."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return False
    try:
        done = subprocess.run([executable, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and any(line.startswith("GPU ") for line in done.stdout.splitlines())


def resolve_device(device: str, platform: str | None = None) -> str:
    """``cpu`` or ``cuda`` for the DEVICE choice ``device`` on ``platform`` (default: ``sys.platform``).

    ``auto`` is ``cuda`` on Linux when :func:`nvidia_gpu_present`, else ``cpu``.

    Raises:
        InputError: an unknown device, or ``cuda`` outside Linux (parameter ``DEVICE``).
    """
    if device not in DEVICES:
        raise InputError(f"'{device}' is not one of {', '.join(DEVICES)}.", "DEVICE")
    platform = platform or sys.platform
    linux = platform.startswith("linux")
    if device == "auto":
        return "cuda" if linux and nvidia_gpu_present() else "cpu"
    if device == "cuda" and not linux:
        raise InputError(f"TensorFlow's CUDA packages (tensorflow[and-cuda]) exist for Linux only, not for "
                         f"'{platform}'. Choose DEVICE cpu (on Windows a GPU needs WSL2).", "DEVICE")
    return device


def device_requirements(requirements: Sequence[str], device: str) -> list[str]:
    """``requirements`` for the resolved ``device``: for ``cuda``, ``tensorflow-cpu`` becomes ``tensorflow[and-cuda]``.

    The version part is kept (``tensorflow-cpu==2.21.0`` → ``tensorflow[and-cuda]==2.21.0``);
    other requirements are unchanged.
    """
    if device != "cuda":
        return list(requirements)
    result = []
    for requirement in requirements:
        match = _TENSORFLOW_CPU.match(requirement.strip())
        result.append(f"tensorflow[and-cuda]{match['version']}" if match else requirement)
    return result


def venv_python(target: Path) -> Path:
    """The interpreter of the virtual environment at ``target``."""
    if sys.platform == "win32":
        return target / "Scripts" / "python.exe"
    return target / "bin" / "python"


def probe_python(python: str, parameter: str = "PYTHON") -> dict[str, Any]:
    """Return the version of ``python`` and whether it has GDAL's bindings and venv.

    Raises:
        InputError: when ``python`` cannot run, is older than 3.10, lacks ``venv`` or ``osgeo``.
    """
    code = ("import json, sys, importlib.util as u; print(json.dumps({'version': list(sys.version_info[:3]), "
            "'osgeo': u.find_spec('osgeo') is not None, 'venv': u.find_spec('venv') is not None, "
            "'ensurepip': u.find_spec('ensurepip') is not None}))")
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise InputError(f"cannot run '{python}': {exc.strerror}. Give the path of a Python 3.10+ interpreter.",
                         parameter) from exc
    if done.returncode != 0:
        raise InputError(f"'{python}' failed to start: {done.stderr.strip()[-300:]}", parameter)
    info: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    version = tuple(info["version"])
    if version < (3, 10):
        raise InputError(f"'{python}' is Python {'.'.join(map(str, version))}; the worker needs Python 3.10 or newer.",
                         parameter)
    if not info["venv"] or not info["ensurepip"]:
        raise InputError(f"'{python}' cannot create virtual environments (no venv/ensurepip). On Debian or Ubuntu: "
                         "sudo apt-get install python3-venv", parameter)
    if not info["osgeo"]:
        raise InputError(f"'{python}' has no GDAL Python bindings (osgeo). On Debian or Ubuntu: "
                         "sudo apt-get install python3-gdal", parameter)
    return info


def create_worker_environment(target: str | os.PathLike[str], base_python: str,
                              requirements: Sequence[str] = DEFAULT_REQUIREMENTS, verify: bool = True,
                              reporter: Reporter | None = None) -> dict[str, Any]:
    """Create (or update) a virtual environment at ``target`` on ``base_python`` with ``requirements``.

    Args:
        target: Folder of the environment (created if missing, reused if it is one).
        base_python: The Python to build on (QGIS's Python, so GDAL's bindings match).
        requirements: pip requirement specifiers to install.
        verify: Run the worker's ``environmentinfo`` job in the new environment at the end.
        reporter: Progress, messages, cancel.

    Returns:
        ``{"python": <interpreter>, "tensorflow": <version or None>, ...}``.

    Raises:
        InputError: a bad base Python or a target that is a non-empty folder but not an environment.
        DependencyError: pip failed (the message ends with pip's last lines).
        CancelledError: the user cancelled (a half-installed environment is kept: running
            again resumes it).
    """
    reporter = reporter or NullReporter()
    folder = Path(target).expanduser()
    python = venv_python(folder)
    if folder.exists() and any(folder.iterdir()) and not python.exists():
        raise InputError(f"'{folder}' is not empty and is not a virtual environment. Choose an empty or new folder.",
                         "OUTPUT_FOLDER")
    probe_python(base_python)
    reporter.progress(0.02)
    if not python.exists():
        reporter.info(f"Creating the virtual environment {folder} on {base_python}")
        done = subprocess.run([base_python, "-m", "venv", "--system-site-packages", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise DependencyError(f"creating the virtual environment failed: {done.stderr.strip()[-500:]}",
                                  "OUTPUT_FOLDER")
    reporter.progress(0.1)
    if requirements:
        other = other_tensorflow_build(requirements)
        if other is not None and _pip_has(python, other):
            # Both builds install the same "tensorflow" package folder: the other one must go first.
            reporter.info(f"Removing {other}, the other TensorFlow build, before installing the requested one")
            _pip_uninstall(python, other)
        _pip_install(python, list(requirements), reporter.sub(0.1, 0.9))
    reporter.progress(0.9)
    result: dict[str, Any] = {"python": str(python), "tensorflow": None}
    if verify:
        reporter.info("Checking the environment with the worker")
        info = run_worker(str(python), "environmentinfo", {}, reporter.sub(0.9, 1.0))
        result.update(tensorflow=info.get("tensorflow"), keras=info.get("keras"), numpy=info.get("numpy"),
                      gdal=info.get("gdal"))
    reporter.progress(1.0)
    return result


def other_tensorflow_build(requirements: Sequence[str]) -> str | None:
    """The TensorFlow distribution that conflicts with ``requirements``, ``None`` without TensorFlow.

    ``tensorflow`` (the CUDA build) for ``tensorflow-cpu``, ``tensorflow-cpu`` for
    ``tensorflow[and-cuda]``: both install the same package folder.
    """
    for requirement in requirements:
        name = re.split(r"[\[=<>!~ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")
        if name == "tensorflow-cpu":
            return "tensorflow"
        if name == "tensorflow":
            return "tensorflow-cpu"
    return None


def _pip_has(python: Path, distribution: str) -> bool:
    done = subprocess.run([str(python), "-m", "pip", "show", "--quiet", distribution], capture_output=True)
    return done.returncode == 0


def _pip_uninstall(python: Path, distribution: str) -> None:
    done = subprocess.run([str(python), "-m", "pip", "uninstall", "--yes", distribution], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise DependencyError(f"removing {distribution} from {python} failed: {done.stderr.strip()[-500:]}",
                              "DEVICE")


def _pip_install(python: Path, requirements: list[str], reporter: Reporter) -> None:
    """Run pip, relaying its lines and a progress estimate; stop it on cancel."""
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
               *requirements]
    reporter.info("Running: " + " ".join(command))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace")
    tail: list[str] = []
    steps = 0
    cancelled = threading.Event()

    def watch_cancel() -> None:
        while process.poll() is None:
            if reporter.is_canceled():
                cancelled.set()
                process.terminate()
                return
            time.sleep(0.2)

    threading.Thread(target=watch_cancel, daemon=True).start()
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip()
        if not line:
            continue
        tail = [*tail, line][-15:]
        if line.startswith(("Collecting", "Downloading", "Installing", "Successfully", "Requirement already")):
            steps += 1
            reporter.info(line)
            # pip does not announce a total: approach 1 asymptotically (~60 steps for TensorFlow).
            reporter.progress(1.0 - 0.97 ** steps)
    process.wait()
    if cancelled.is_set():
        raise CancelledError("Cancelled while installing packages; run again to finish the environment.")
    if process.returncode != 0:
        raise DependencyError("pip failed to install " + " ".join(requirements) + ":\n" + "\n".join(tail),
                              "PACKAGES")
