"""Compatibility with OTBTF's interfaces.

- :mod:`~otbtf_qgis.core.compat.otb` — OTBTF's applications ``TensorflowModelServe`` and
  ``PatchesExtraction`` with their keys, as parameter dicts (pyotb, ``otbApplication``);
- :mod:`~otbtf_qgis.core.compat.otbcli` — the same as ``otbcli`` command lines;
- :mod:`~otbtf_qgis.core.compat.keys`, :mod:`~otbtf_qgis.core.compat.filenames` — OTBTF's
  keys and OTB's output file names (pixel types, extended file names);
- :mod:`~otbtf_qgis.core.compat.otbtf` — runs a script written for OTBTF's Python API.

OTBTF's Python API itself (``DatasetFromPatchesImages``, ``TFRecords``, ``ModelBase``,
``ops``, ``layers``, …) is exported by :mod:`otbtf_qgis.core`.
"""

from __future__ import annotations

from otbtf_qgis.core.lazy import lazy_exports

_EXPORTS = {
    "TensorflowModelServe": "otbtf_qgis.core.compat.otb",
    "PatchesExtraction": "otbtf_qgis.core.compat.otb",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
