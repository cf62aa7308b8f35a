"""scripts/configure_qgis_otb.py: QGIS's OTB provider settings written into a profile, idempotently.

Runs the script with /usr/bin/python3 (it needs PyQt5) so this session never loads Qt.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "configure_qgis_otb.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEM_PYTHON, str(SCRIPT), *map(str, args)], capture_output=True, text=True, check=False)


@pytest.fixture
def fake_otb(tmp_path: Path) -> Path:
    """An OTB prefix with the three things QGIS's provider checks, laid out like Debian's."""
    prefix = tmp_path / "otb"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "otbApplicationLauncherCommandLine").write_text("")
    (prefix / "share" / "otb" / "description").mkdir(parents=True)
    (prefix / "share" / "otb" / "description" / "algs.txt").write_text("")
    (prefix / "lib" / "x86_64-linux-gnu" / "otb" / "applications").mkdir(parents=True)
    (prefix / "lib" / "x86_64-linux-gnu" / "otb" / "applications" / "otbapp_BandMath.so").write_text("")
    return prefix


def test_enables_the_provider_and_keeps_other_settings(tmp_path: Path, fake_otb: Path):
    ini = tmp_path / "profile" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[PythonPlugins]\notbtf_qgis=true\n\n[qgis]\nsymbolsListGroupsIndex=0\n")

    done = run(tmp_path / "profile", "--otb-folder", fake_otb)

    assert done.returncode == 0, done.stderr
    assert "QGIS OTB provider enabled" in done.stdout
    text = ini.read_text()
    assert (f"[Processing]\nConfiguration\\OTB_APP_FOLDER={fake_otb}/lib/x86_64-linux-gnu/otb/applications\n"
            f"Configuration\\OTB_FOLDER={fake_otb}\n") in text
    assert "[PythonPlugins]\notbprovider=true\notbtf_qgis=true\n" in text
    assert "[qgis]\nsymbolsListGroupsIndex=0\n" in text

    again = run(tmp_path / "profile", "--otb-folder", fake_otb)
    assert again.returncode == 0 and "already enabled" in again.stdout
    assert ini.read_text() == text


@pytest.mark.parametrize(("missing", "message"), [
    ("bin/otbApplicationLauncherCommandLine", "install Debian's otb-bin"),
    ("share/otb/description/algs.txt", "install Debian's otb-qgis"),
    ("lib/x86_64-linux-gnu/otb/applications/otbapp_BandMath.so", "install Debian's libotb-apps"),
])
def test_refuses_an_incomplete_installation(tmp_path: Path, fake_otb: Path, missing: str, message: str):
    (fake_otb / missing).unlink()

    done = run(tmp_path / "profile", "--otb-folder", fake_otb)

    assert done.returncode != 0
    assert message in done.stderr
    assert not (tmp_path / "profile").exists()
