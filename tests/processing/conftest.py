"""Fixtures for the Processing side: an isolated QGIS profile, the real qgis_process, and in-process helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
WRAPPER = ROOT / "scripts" / "qgis_process"


def qgis_process(args: Sequence[str], profile: Path, plugins: Path | None = None, timeout: float = 600,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the repository's qgis_process wrapper with an isolated profile (in ``cwd``, default the current folder)."""
    full_env = dict(os.environ)
    full_env["OTBTF_QGIS_PROFILE"] = str(profile)
    full_env.setdefault("OTBTF_QGIS_PYTHON", sys.executable)
    if plugins is not None:
        full_env["OTBTF_QGIS_PLUGINPATH"] = str(plugins)
    if env:
        full_env.update(env)
    return subprocess.run([str(WRAPPER), *args], capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd=cwd)


def run_json(args: Sequence[str], profile: Path, **kwargs: Any) -> dict[str, Any]:
    """``qgis_process run ... --json``; return the parsed JSON (fails the test with stderr otherwise)."""
    done = qgis_process([*args, "--json"], profile, **kwargs)
    start = done.stdout.find("{")
    assert done.returncode == 0 and start >= 0, (
        f"qgis_process failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout[start:])


@pytest.fixture(scope="session")
def dev_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh QGIS profile with the development plugin folder enabled."""
    plugins = ROOT / "build" / "plugins"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "assemble_plugin.py"), "--dev", str(plugins)], check=True,
                   capture_output=True)
    profile = tmp_path_factory.mktemp("profile")
    done = qgis_process(["plugins", "enable", "otbtf_qgis"], profile, plugins)
    assert done.returncode == 0, done.stderr
    return profile


@pytest.fixture
def run_alg(dev_profile: Path) -> Callable[..., dict[str, Any]]:
    """Run ``otbtf:<alg>`` with ``KEY=value`` parameters through qgis_process; return its JSON."""

    def run(alg: str, timeout: float = 600, **params: Any) -> dict[str, Any]:
        args = ["run", alg if ":" in alg else f"otbtf:{alg}", "--"]
        for key, value in params.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            args.extend(f"{key}={v}" for v in values)
        return run_json(args, dev_profile, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def training_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Patches folders of 64×64 two-band patches, labels = the brighter band (train 16, valid 8)."""
    from tests.core.training_data import make_samples, write_patches_folder

    root = tmp_path_factory.mktemp("train")
    images, labels = make_samples(16, 64, 2, seed=1)
    valid_images, valid_labels = make_samples(8, 64, 2, seed=2)
    return {"train": write_patches_folder(root / "train", images, labels, class_names=("water", "land")),
            "valid": write_patches_folder(root / "valid", valid_images, valid_labels, class_names=("water", "land")),
            "root": root}


@pytest.fixture(scope="session")
def trained_model(training_folders: dict[str, Path], dev_profile: Path) -> tuple[Path, dict[str, Any]]:
    """An FCNN trained 2 epochs by otbtf:trainmodel: its folder and the qgis_process JSON."""
    output = training_folders["root"] / "model"
    result = run_json(["run", "otbtf:trainmodel", "--", f"TRAIN_DATA={training_folders['train']}",
                       f"VALID_DATA={training_folders['valid']}", "EPOCHS=2", "BATCH_SIZE=8",
                       "LEARNING_RATE=0.01", "SEED=1", f"OUTPUT_MODEL={output}"], dev_profile)
    return output, result


# In-process helpers: the algorithms inside this test session's QgsApplication (pytest-qgis).
# Tests of parameter handling build the job config without running anything; chains that
# only need inputs for the step under test run the algorithms here, without qgis_process's
# start-up (the worker still runs each job).


def algorithm(name: str) -> Any:
    """A fresh ``otbtf:<name>`` algorithm, its parameters declared (``initAlgorithm``)."""
    from otbtf_qgis.processing.provider import algorithm_classes

    for cls in algorithm_classes():
        if cls.NAME == name:
            instance = cls()
            instance.initAlgorithm()
            return instance
    raise KeyError(name)


def as_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Paths to text, lists of paths to lists of text: parameter values as QGIS receives them."""
    return {key: [str(v) for v in value] if isinstance(value, (list, tuple)) else
            str(value) if isinstance(value, Path) else value for key, value in params.items()}


def build_config(name: str, context: Any = None, **params: Any) -> Any:
    """The job config ``otbtf:<name>`` builds from ``params`` (a fresh context without project by default)."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    return algorithm(name).build_config(as_parameters(params), context or QgsProcessingContext(),
                                        QgsProcessingFeedback())


@pytest.fixture(scope="session")
def layers_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small fixture files: image.tif (80x64, 3 bands), mask.tif, polygons.gpkg (field landcover), points.gpkg."""
    from tests.processing.sampling_data import make_image, make_polygons
    from tests.vector_data import write_points

    folder = tmp_path_factory.mktemp("layers")
    make_image(folder / "image.tif")
    make_image(folder / "mask.tif", bands=1)
    make_polygons(folder / "polygons.gpkg")
    write_points(folder / "points.gpkg", [(500205.0, 4499795.0), (500405.0, 4499595.0)],
                 fields={"landcover": ["crop", "water"]})
    return folder


@pytest.fixture
def project_context(qgis_app: Any, layers_folder: Path) -> Any:
    """A processing context whose project holds the fixture files as layers named image, mask, polygons, points."""
    from qgis.core import QgsProcessingContext, QgsProject, QgsRasterLayer, QgsVectorLayer

    project = QgsProject()
    layers = [QgsRasterLayer(str(layers_folder / "image.tif"), "image"),
              QgsRasterLayer(str(layers_folder / "mask.tif"), "mask"),
              QgsVectorLayer(str(layers_folder / "polygons.gpkg"), "polygons", "ogr"),
              QgsVectorLayer(str(layers_folder / "points.gpkg"), "points", "ogr")]
    assert all(layer.isValid() for layer in layers)
    project.addMapLayers(layers)
    context = QgsProcessingContext()
    context.setProject(project)
    context.test_project = project  # keep the project alive as long as the context
    yield context
    project.clear()


@pytest.fixture
def run_in_process(qgis_app: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """Run ``otbtf:<name>`` in this process (its job in the worker); return its outputs or raise its error."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    monkeypatch.setenv("OTBTF_QGIS_PYTHON", os.environ.get("OTBTF_QGIS_PYTHON") or sys.executable)

    def run(name: str, **params: Any) -> dict[str, Any]:
        alg = algorithm(name)
        parameters = as_parameters(params)
        context = QgsProcessingContext()
        ok, message = alg.checkParameterValues(parameters, context)
        assert ok, message
        results, ok = alg.run(parameters, context, QgsProcessingFeedback(), {}, False)
        assert ok
        return dict(results)

    return run
