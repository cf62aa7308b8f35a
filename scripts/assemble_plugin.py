"""Assemble the QGIS plugin folder: for development (symlinks) or as the release zip.

QGIS wants ``metadata.txt`` and the icons inside the plugin folder; in the repository
they sit at the top level. ``--dev DIR`` makes ``DIR/otbtf_qgis`` with symlinks to the
package entries, ``metadata.txt``, ``LICENSE``, ``README.md`` and ``resources`` (edits
show at once); ``--zip FILE`` writes the release zip with a single top folder
``otbtf_qgis/`` holding the same entries and no byte-code.
"""

from __future__ import annotations

import argparse
import os
import shutil
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "otbtf_qgis"
EXTRA = ("metadata.txt", "LICENSE", "resources", "README.md")
SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def assemble_dev(target_dir: Path) -> Path:
    """Create (or refresh) ``target_dir/otbtf_qgis`` as symlinks into the checkout."""
    plugin = target_dir / "otbtf_qgis"
    if plugin.is_symlink() or plugin.is_file():
        plugin.unlink()
    plugin.mkdir(parents=True, exist_ok=True)
    wanted = {p.name: p for p in PACKAGE.iterdir() if p.name not in SKIP_DIRS}
    wanted.update({name: ROOT / name for name in EXTRA if (ROOT / name).exists()})
    for existing in plugin.iterdir():
        if existing.name not in wanted or not existing.is_symlink():
            if existing.is_dir() and not existing.is_symlink():
                shutil.rmtree(existing)
            else:
                existing.unlink()
    for name, source in wanted.items():
        link = plugin / name
        relative = os.path.relpath(source, plugin)
        if link.is_symlink() and os.readlink(link) == relative:
            continue
        if link.is_symlink():
            link.unlink()
        link.symlink_to(relative)
    return plugin


def _files(base: Path) -> list[Path]:
    files = []
    for path in sorted(base.rglob("*")):
        if any(part in SKIP_DIRS for part in path.relative_to(base).parts):
            continue
        if path.is_file() and path.suffix not in SKIP_SUFFIXES:
            files.append(path)
    return files


def assemble_zip(zip_path: Path) -> Path:
    """Write the release zip: ``otbtf_qgis/`` with the package, metadata, licence, README and resources."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    temp = zip_path.with_name(zip_path.name + ".partial")
    with zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _files(PACKAGE):
            archive.write(path, "otbtf_qgis/" + path.relative_to(PACKAGE).as_posix())
        for name in EXTRA:
            source = ROOT / name
            if source.is_dir():
                for path in _files(source):
                    archive.write(path, f"otbtf_qgis/{name}/" + path.relative_to(source).as_posix())
            elif source.is_file():
                archive.write(source, f"otbtf_qgis/{name}")
    os.replace(temp, zip_path)
    return zip_path


def main() -> None:
    """Command line: ``--dev DIR`` or ``--zip FILE``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dev", type=Path, help="folder to hold the development plugin folder")
    group.add_argument("--zip", type=Path, help="release zip to write")
    args = parser.parse_args()
    if args.dev:
        print(assemble_dev(args.dev))
    else:
        print(assemble_zip(args.zip))


if __name__ == "__main__":
    main()
