"""Accuracy assessment: a class map against reference data (``otbtf:accuracyassessment``).

- :mod:`~otbtf_qgis.core.assessment.statistics` — confusion-matrix statistics on numpy
  only: overall accuracy and its interval over sampling units, kappa, user's and
  producer's accuracies, F1, area estimates of Olofsson et al. (2014);
- :mod:`~otbtf_qgis.core.assessment.classmap` — the class map: codes, names, nodata,
  pixel area, strips;
- :mod:`~otbtf_qgis.core.assessment.reference` — reference polygons, points or a label
  raster against the map's grid and classes;
- :mod:`~otbtf_qgis.core.assessment.report` — the confusion matrix and class table (CSV)
  and the HTML report;
- :mod:`~otbtf_qgis.core.assessment.accuracyassessment` — the job: :func:`accuracy_assessment`.

The config, :class:`AccuracyAssessmentConfig`, lives with the other job configs
(:mod:`otbtf_qgis.core.jobs.configs.accuracyassessment`) and is re-exported here.
"""

from __future__ import annotations

from otbtf_qgis.core.lazy import lazy_exports

_EXPORTS = {
    "AccuracyAssessmentConfig": "otbtf_qgis.core.jobs.configs.accuracyassessment",
    "accuracy_assessment": "otbtf_qgis.core.assessment.accuracyassessment",
    "assess": "otbtf_qgis.core.assessment.accuracyassessment",
    "Assessment": "otbtf_qgis.core.assessment.report",
    "accuracy_interval": "otbtf_qgis.core.assessment.statistics",
    "class_accuracies": "otbtf_qgis.core.assessment.statistics",
    "kappa": "otbtf_qgis.core.assessment.statistics",
    "olofsson_areas": "otbtf_qgis.core.assessment.statistics",
    "overall_accuracy": "otbtf_qgis.core.assessment.statistics",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
