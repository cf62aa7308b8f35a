"""The QGIS-free core of otbtf_qgis, and OTBTF's Python API under the same names.

OTBTF documentation code runs with one changed line::

    from otbtf_qgis.core import DatasetFromPatchesImages, ModelBase, ops   # was: from otbtf import ...
    import otbtf_qgis.core as otbtf                                          # was: import otbtf

Importing this package is cheap: each name below is imported on first use, and only
then TensorFlow, GDAL or numpy. The core is organised by role, each subpackage
importing only from those before it::

    errors, progress  ←  jobs  ←  io  ←  data  ←  models  ←  training, serving  ←  tools, compat

- :mod:`~otbtf_qgis.core.jobs` — standard library only: job configs (one module per
  command), the config codec, the command registry, the worker and its client;
- :mod:`~otbtf_qgis.core.io` — windows, rasters, vectors, striped TIFFs, pyotb inputs;
- :mod:`~otbtf_qgis.core.data` — sampling, patch extraction, dataset formats and readers, TFRecords;
- :mod:`~otbtf_qgis.core.models` — ModelBase, the FCNN, layers, ops, SavedModels, receptive fields, export;
- :mod:`~otbtf_qgis.core.training` — the training pipeline, loop, checkpoints and job;
- :mod:`~otbtf_qgis.core.serving` — tile-by-tile cropped inference over whole rasters;
- :mod:`~otbtf_qgis.core.tools` and :mod:`~otbtf_qgis.core.compat` — environment report and
  diagnostics; OTBTF's command-line and parameter-dict interface.

Nothing here imports QGIS or PyQt.
"""

from __future__ import annotations

from otbtf_qgis.core.lazy import lazy_exports

#: What OTBTF's ``otbtf`` package exports at its top level, from their homes in the core.
OTBTF_NAMES: dict[str, str] = {
    "Buffer": "otbtf_qgis.core.data.patches",
    "PatchesReaderBase": "otbtf_qgis.core.data.patches",
    "PatchesImagesReader": "otbtf_qgis.core.data.patches",
    "IteratorBase": "otbtf_qgis.core.data.patches",
    "RandomIterator": "otbtf_qgis.core.data.patches",
    "Dataset": "otbtf_qgis.core.data.patches",
    "DatasetFromPatchesImages": "otbtf_qgis.core.data.patches",
    "TFRecords": "otbtf_qgis.core.data.tfrecords",
    "ModelBase": "otbtf_qgis.core.models.base",
    "layers": "otbtf_qgis.core.models.layers:",
    "ops": "otbtf_qgis.core.models.ops:",
}
__all__ = list(OTBTF_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, OTBTF_NAMES)
