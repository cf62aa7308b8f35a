"""Fixtures shared by both test sessions (so: no QGIS and no TensorFlow imported here).

OTB interop is optional (``make setup-otb``). Tests that need it carry ``@pytest.mark.otb``:
they are skipped where it is not set up, except under ``CI=true`` where a missing OTB
fails them, so that CI (which runs ``make setup-otb``) never passes by skipping them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from types import ModuleType

import pytest

OTB_COMMANDS = ("otbApplicationLauncherCommandLine", "otbcli")
OTB_MODULES = ("otbApplication", "pyotb")


def otb_setup_problem() -> str | None:
    """What is missing from the OTB interop set up by ``make setup-otb``, or ``None``."""
    for command in OTB_COMMANDS:
        if shutil.which(command) is None:
            return f"command {command} not found (Debian's otb-bin)"
    for module in OTB_MODULES:
        if importlib.util.find_spec(module) is None:
            return f"Python module {module} not importable"
    return None


def require_otb() -> None:
    """Skip the current test when OTB is not set up, or fail it under ``CI=true``."""
    problem = otb_setup_problem()
    if problem is None:
        return
    message = f"OTB interop not set up: {problem}; run `make setup-otb`"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: OTB tests must run, not be skipped)")
    pytest.skip(message)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("otb") is not None:
        require_otb()


@pytest.fixture
def pyotb() -> ModuleType:
    """The ``pyotb`` module, on Debian's OTB (skips/fails as described above when missing)."""
    require_otb()
    import pyotb as module

    return module
