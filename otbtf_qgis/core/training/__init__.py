"""Training: from dataset folders to an exported SavedModel (the ``trainmodel`` job).

- :mod:`~otbtf_qgis.core.training.pipeline` — what the data hold (TensorFlow-free plan), the
  one-hot targets and weights, augmentation, the training datasets;
- :mod:`~otbtf_qgis.core.training.loop` — the ``tf.distribute`` loop, its metrics and summaries;
- :mod:`~otbtf_qgis.core.training.checkpoints` — per-epoch checkpoints, state and resume;
- :mod:`~otbtf_qgis.core.training.trainmodel` — the job: model, epochs, export.
"""

from __future__ import annotations

from otbtf_qgis.core.lazy import lazy_exports

_EXPORTS = {
    "train_model": "otbtf_qgis.core.training.trainmodel:run",
    "TrainModelConfig": "otbtf_qgis.core.jobs.configs.trainmodel",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
