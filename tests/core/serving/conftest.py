"""Fixtures of the serving tests: small SavedModels built once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import models


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def _build(model_dir: Path, name: str) -> tuple[Path, Any]:
    folder = model_dir / name
    return folder, getattr(models, f"{name}_model")(folder)


@pytest.fixture(scope="session")
def valid_model(model_dir):
    return _build(model_dir, "valid")


@pytest.fixture(scope="session")
def unet_model(model_dir):
    return _build(model_dir, "unet")


@pytest.fixture(scope="session")
def gain_model(model_dir):
    return _build(model_dir, "gain")


@pytest.fixture(scope="session")
def two_resolution_model(model_dir):
    return _build(model_dir, "two_resolution")


@pytest.fixture(scope="session")
def fixed_patch_model(model_dir):
    return _build(model_dir, "fixed_patch")
