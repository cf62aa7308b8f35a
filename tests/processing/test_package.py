"""The release zip: layout, and a clean QGIS profile that installs it and runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.processing.conftest import ROOT, qgis_process


def build_zip(tmp_path: Path) -> Path:
    target = tmp_path / "otbtf_qgis.zip"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "assemble_plugin.py"), "--zip", str(target)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return target


def test_zip_layout(tmp_path: Path):
    names = zipfile.ZipFile(build_zip(tmp_path)).namelist()
    assert {n.split("/")[0] for n in names} == {"otbtf_qgis"}
    for required in ("otbtf_qgis/metadata.txt", "otbtf_qgis/LICENSE", "otbtf_qgis/__init__.py",
                     "otbtf_qgis/resources/icons/otbtf.svg", "otbtf_qgis/core/jobs/worker.py",
                     "otbtf_qgis/processing/provider.py"):
        assert required in names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]


def test_metadata_has_required_fields():
    import configparser

    parser = configparser.ConfigParser()
    parser.read(ROOT / "metadata.txt")
    general = parser["general"]
    for key in ("name", "description", "about", "version", "qgisMinimumVersion", "author", "email", "tracker",
                "repository", "icon", "tags", "category"):
        assert general.get(key), key
    assert general["qgisMinimumVersion"] == "3.22" and general["hasProcessingProvider"] == "yes"
    from otbtf_qgis import __version__

    assert general["version"] == __version__


def test_zip_installs_into_clean_profile_and_runs(tmp_path: Path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    zipfile.ZipFile(build_zip(tmp_path)).extractall(plugins)
    profile = tmp_path / "profile"
    enabled = qgis_process(["plugins", "enable", "otbtf_qgis"], profile, plugins)
    assert enabled.returncode == 0, enabled.stderr
    listed = qgis_process(["list"], profile, plugins)
    assert "otbtf:environmentinfo" in listed.stdout
    # The worker of the installed copy imports the installed package, not the checkout.
    done = qgis_process(["run", "otbtf:environmentinfo", "--json"], profile, plugins)
    assert done.returncode == 0, done.stderr
    assert '"TENSORFLOW": "2.21' in done.stdout
    report = json.loads(json.loads(done.stdout[done.stdout.find("{"):])["results"]["REPORT"])
    assert report["otbtf_qgis_path"] == str(plugins / "otbtf_qgis")
