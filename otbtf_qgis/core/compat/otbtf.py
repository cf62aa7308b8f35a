"""Run a script written for OTBTF's Python API on this package, unchanged.

``python -m otbtf_qgis.core.compat.otbtf SCRIPT [ARGS ...]`` installs ``otbtf`` as an
alias of this package (see :func:`~otbtf_qgis.core.models.custom.install_otbtf_aliases`),
then runs ``SCRIPT`` as ``__main__`` with ``ARGS``. When the script lies inside a
checkout of OTBTF (OTBTF's own examples, ``otbtf/examples/tensorflow_v2x/fcnn/...``), the
checkout's ``otbtf`` folder is searched for the modules this package does not serve
(``otbtf.examples...``), so its helper modules import as they do with OTBTF::

    cd otbtf/otbtf/examples/tensorflow_v2x/fcnn
    python -m otbtf_qgis.core.compat.otbtf train_from_tfrecords.py --model_dir m --tfrecords_dir t

In Python, ``import otbtf_qgis.core as otbtf`` gives the same names without an alias.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

from otbtf_qgis.core.models.custom import install_otbtf_aliases


def otbtf_package_folder(script: str | Path) -> Path | None:
    """The ``otbtf`` package folder of a checkout of OTBTF that holds ``script``, if any."""
    for folder in Path(script).resolve().parents:
        if folder.name == "otbtf" and (folder / "__init__.py").is_file():
            return folder
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``argv[0]`` (a Python script) with the ``otbtf`` aliases; return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(__doc__ or "")
        return 0 if args else 2
    script = Path(args[0])
    if not script.is_file():
        sys.stderr.write(f"ERROR: the script '{script}' does not exist.\n")
        return 2
    if not install_otbtf_aliases(otbtf_package_folder(script)):
        sys.stderr.write("WARNING: OTBTF's own 'otbtf' package is importable: the script uses it, not otbtf_qgis.\n")
    sys.argv = [str(script), *args[1:]]
    sys.path.insert(0, str(script.resolve().parent))
    runpy.run_path(str(script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
