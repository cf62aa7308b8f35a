from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otbtf_qgis.core.errors import RasterIOError
from otbtf_qgis.core.jobs.outputs import (
    atomic_output,
    ensure_writable_parent,
    partial_name,
    remove_partials,
    remove_path,
)

ROOT = Path(__file__).resolve().parents[3]
NOBODY = 65534


def test_partial_name_is_a_hidden_sibling_with_the_same_suffix(tmp_path: Path):
    assert partial_name(tmp_path / "out.tif") == tmp_path / f".out.tif.partial-{os.getpid()}.tif"


def test_remove_partials_cleans_leftovers_of_dead_processes(tmp_path: Path):
    final = tmp_path / "out.tif"
    leftover = final.with_name(".out.tif.partial-99999.tif")
    leftover.write_text("half")
    other = tmp_path / ".other.tif.partial-1.tif"
    other.write_text("keep")
    assert remove_partials(final) == [leftover]
    assert other.exists() and not leftover.exists()


def test_remove_path_removes_files_folders_and_symlinks_but_not_their_targets(tmp_path: Path):
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a")
    link = tmp_path / "link"
    link.symlink_to(folder)
    remove_path(link)
    assert not link.exists() and (folder / "sub" / "a.txt").exists()
    remove_path(folder)
    assert not folder.exists()
    remove_path(tmp_path / "missing")  # no error


def test_atomic_output_for_folders(tmp_path: Path):
    final = tmp_path / "model"
    with atomic_output(final) as temp:
        temp.mkdir()
        (temp / "a.txt").write_text("1")
        assert not final.exists()
    assert (final / "a.txt").read_text() == "1"
    with pytest.raises(KeyError), atomic_output(final) as temp:
        temp.mkdir()
        raise KeyError("x")
    assert (final / "a.txt").exists() and len(list(tmp_path.iterdir())) == 1


def test_a_folder_that_cannot_be_created_is_named(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RasterIOError, match=f"cannot create the output folder '{blocker / 'sub'}'") as error:
        ensure_writable_parent(blocker / "sub" / "x.tif", "OUTPUT")
    assert error.value.parameter == "OUTPUT"


def test_a_folder_without_write_permission_is_named(tmp_path: Path):
    """The check runs as a user without the right to write there (as root: the nobody user, in a child process)."""
    shared = Path("/tmp") / f"otbtf-locked-{os.getpid()}"  # tmp_path is private to root: nobody cannot reach it
    locked = shared / "locked"
    locked.mkdir(parents=True)
    shared.chmod(0o755)
    locked.chmod(0o555)
    # The imports come first, as root: the checkout may sit in a folder private to root.
    code = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from otbtf_qgis.core.errors import RasterIOError
        from otbtf_qgis.core.jobs.outputs import ensure_writable_parent
        if os.geteuid() == 0:
            os.setgid({NOBODY}); os.setuid({NOBODY})
        try:
            ensure_writable_parent(Path({str(locked / "x.tif")!r}), "OUTPUT")
        except RasterIOError as exc:
            print(exc)
    """)
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    finally:
        locked.chmod(0o755)
        locked.rmdir()
        shared.rmdir()
    assert done.stdout.strip() == (f"OUTPUT: the output folder '{locked}' is not writable. Choose a folder you can "
                                   "write to."), done.stderr
