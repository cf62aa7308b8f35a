"""scripts/enable_deb_src.py: adds Debian's deb-src next to the user's APT sources, never edits them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "enable_deb_src.py"
OWN_FILE = Path("sources.list.d") / "otbtf-qgis-deb-src.sources"

DEBIAN_DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

THIRD_PARTY = """\
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
"""


def run(apt_dir: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), "--apt-dir", str(apt_dir), *args],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def apt_dir(tmp_path: Path) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEBIAN_DEB822)
    (tmp_path / "sources.list.d" / "nodesource.sources").write_text(THIRD_PARTY)
    return tmp_path


def test_adds_deb_src_for_debian_repositories_only(apt_dir: Path):
    run(apt_dir)

    assert (apt_dir / OWN_FILE).read_text().split("\n", 2)[2] == (
        "Types: deb-src\n"
        "URIs: http://deb.debian.org/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "\n"
        "Types: deb-src\n"
        "URIs: http://deb.debian.org/debian-security\n"
        "Suites: bookworm-security\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    # The user's files are untouched.
    assert (apt_dir / "sources.list.d" / "debian.sources").read_text() == DEBIAN_DEB822
    assert (apt_dir / "sources.list.d" / "nodesource.sources").read_text() == THIRD_PARTY


def test_second_run_changes_nothing(apt_dir: Path):
    run(apt_dir)
    first = (apt_dir / OWN_FILE).read_text()

    assert run(apt_dir).strip() == "Debian deb-src repositories: already enabled"
    assert (apt_dir / OWN_FILE).read_text() == first


def test_nothing_written_when_the_user_already_has_deb_src(apt_dir: Path):
    (apt_dir / "sources.list.d" / "debian.sources").write_text(DEBIAN_DEB822.replace("Types: deb\n",
                                                                                     "Types: deb deb-src\n"))
    assert run(apt_dir).strip() == "Debian deb-src repositories: already enabled"
    assert not (apt_dir / OWN_FILE).exists()


def test_one_line_sources_list_and_only_the_missing_suites(tmp_path: Path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://ftp.fr.debian.org/debian "
        "bookworm main contrib\n"
        "deb-src http://ftp.fr.debian.org/debian/ bookworm main contrib\n"
        "deb http://ftp.fr.debian.org/debian bookworm-updates main  # comment\n"
        "# deb http://ftp.fr.debian.org/debian bookworm-backports main\n"
        "deb http://example.org/debian bookworm main\n")

    run(tmp_path)

    text = (tmp_path / OWN_FILE).read_text()
    assert "Types: deb-src\nURIs: http://ftp.fr.debian.org/debian\nSuites: bookworm-updates\nComponents: main\n" in text
    assert "Suites: bookworm\n" not in text and "backports" not in text and "example.org" not in text


def test_disabled_stanzas_are_ignored(apt_dir: Path):
    (apt_dir / "sources.list.d" / "debian.sources").write_text("Enabled: no\n" + DEBIAN_DEB822.split("\n\n")[0])
    assert run(apt_dir).strip() == "Debian deb-src repositories: already enabled"
