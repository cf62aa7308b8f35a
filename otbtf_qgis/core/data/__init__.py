"""Training data: sample positions, patches, dataset folders and their readers, TFRecords.

- :mod:`~otbtf_qgis.core.data.patchesselection` — the ``patchesselection`` job: positions on a grid;
- :mod:`~otbtf_qgis.core.data.patchesextraction` — the ``patchesextraction`` job: patches-images;
- :mod:`~otbtf_qgis.core.data.createtfrecords` — the ``createtfrecords`` job;
- :mod:`~otbtf_qgis.core.data.grid`, :mod:`~otbtf_qgis.core.data.labels` — grid geometry, class labels;
- :mod:`~otbtf_qgis.core.data.formats` — on-disk formats: manifests, TFRecord framing, the
  overwrite rule (no TensorFlow);
- :mod:`~otbtf_qgis.core.data.description` — what a dataset folder holds (no TensorFlow);
- :mod:`~otbtf_qgis.core.data.patches` — OTBTF's patches-images readers and ``Dataset``;
- :mod:`~otbtf_qgis.core.data.tfrecords` — OTBTF's ``TFRecords``;
- :mod:`~otbtf_qgis.core.data.loading` — :func:`open_dataset`, either kind of folder as batches.
"""

from __future__ import annotations

from otbtf_qgis.core.lazy import lazy_exports

_EXPORTS = {
    "describe_dataset": "otbtf_qgis.core.data.description",
    "DatasetDescription": "otbtf_qgis.core.data.description",
    "open_dataset": "otbtf_qgis.core.data.loading",
    "PatchesImagesReader": "otbtf_qgis.core.data.patches",
    "DatasetFromPatchesImages": "otbtf_qgis.core.data.patches",
    "TFRecords": "otbtf_qgis.core.data.tfrecords",
    "patches_selection": "otbtf_qgis.core.data.patchesselection",
    "extract_patches": "otbtf_qgis.core.data.patchesextraction",
    "create_tfrecords": "otbtf_qgis.core.data.createtfrecords",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
