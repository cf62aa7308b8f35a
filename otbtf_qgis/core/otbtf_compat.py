"""Former home of the OTBTF-compatible interface, kept so that documented commands keep working.

``from otbtf_qgis.core.otbtf_compat import TensorflowModelServe`` and
``python -m otbtf_qgis.core.otbtf_compat TensorflowModelServe ...`` still work; the code
lives in :mod:`otbtf_qgis.core.compat` (:mod:`~otbtf_qgis.core.compat.otb` for the
parameter dicts, :mod:`~otbtf_qgis.core.compat.otbcli` for the command line).
"""

from __future__ import annotations

import sys

from otbtf_qgis.core.compat.otb import PatchesExtraction, TensorflowModelServe, extraction_request, serve_request
from otbtf_qgis.core.compat.otbcli import main, parse_command_line, usage

__all__ = ["PatchesExtraction", "TensorflowModelServe", "extraction_request", "main", "parse_command_line",
           "serve_request", "usage"]

if __name__ == "__main__":
    sys.exit(main())
