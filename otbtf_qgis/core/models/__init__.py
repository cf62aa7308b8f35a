"""Models: OTBTF's ModelBase, the FCNN, layers and ops, SavedModels, receptive fields, export.

- :mod:`~otbtf_qgis.core.models.base` — ``ModelBase`` on Keras 3, cropped outputs;
- :mod:`~otbtf_qgis.core.models.fcnn` — the FCNN of OTBTF's documentation;
- :mod:`~otbtf_qgis.core.models.layers`, :mod:`~otbtf_qgis.core.models.ops` — OTBTF's layers and ops;
- :mod:`~otbtf_qgis.core.models.custom` — a user's ``ModelBase`` subclass from a Python file;
- :mod:`~otbtf_qgis.core.models.saved_model` — SavedModels and their ``otbtf_model.json``;
- :mod:`~otbtf_qgis.core.models.receptive_field` — valid-pixel geometry (pure functions);
- :mod:`~otbtf_qgis.core.models.graph` — that geometry traced through a TensorFlow graph;
- :mod:`~otbtf_qgis.core.models.report` — the receptive-field report as tables;
- :mod:`~otbtf_qgis.core.models.receptivefield` — the ``receptivefield`` job;
- :mod:`~otbtf_qgis.core.models.export` — SavedModel + ``otbtf_model.json`` + ``history.json``.
"""

from __future__ import annotations

from otbtf_qgis.core.lazy import lazy_exports

_EXPORTS = {
    "ModelBase": "otbtf_qgis.core.models.base",
    "FCNNModel": "otbtf_qgis.core.models.fcnn",
    "ServingModel": "otbtf_qgis.core.models.saved_model",
    "read_model_metadata": "otbtf_qgis.core.models.saved_model",
    "analyze_saved_model": "otbtf_qgis.core.models.graph",
    "export_model": "otbtf_qgis.core.models.export",
    "load_model_class": "otbtf_qgis.core.models.custom",
    "layers": "otbtf_qgis.core.models.layers:",
    "ops": "otbtf_qgis.core.models.ops:",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
