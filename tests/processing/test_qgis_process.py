"""The plugin as a user of the checkout drives it: the real qgis_process, headless."""

from __future__ import annotations

from pathlib import Path

from tests.processing.conftest import qgis_process


def test_provider_is_listed(dev_profile: Path):
    done = qgis_process(["list"], dev_profile)
    assert done.returncode == 0, done.stderr
    assert "OTBTF" in done.stdout
    assert "otbtf:environmentinfo\tEnvironment information" in done.stdout
