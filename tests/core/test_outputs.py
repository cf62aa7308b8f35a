from __future__ import annotations

import os
from pathlib import Path

from otbtf_qgis.core.outputs import partial_name, remove_partials, remove_path


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
