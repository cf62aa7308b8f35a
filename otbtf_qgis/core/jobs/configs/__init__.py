"""The job configs: one frozen dataclass per worker command, in a module named after the command.

Every front end fills the same config: the Processing algorithm of the same name, the
worker's command line (``python -m otbtf_qgis.core <command> --help``) and Python
callers. Configs import only the standard library; they check what can be checked
without opening files, and the job checks the rest.
"""

from __future__ import annotations

from otbtf_qgis.core.lazy import lazy_exports

_EXPORTS = {
    "PatchesSelectionConfig": "otbtf_qgis.core.jobs.configs.patchesselection",
    "PatchesExtractionConfig": "otbtf_qgis.core.jobs.configs.patchesextraction",
    "CreateTFRecordsConfig": "otbtf_qgis.core.jobs.configs.createtfrecords",
    "TrainModelConfig": "otbtf_qgis.core.jobs.configs.trainmodel",
    "ReceptiveFieldConfig": "otbtf_qgis.core.jobs.configs.receptivefield",
    "ServeConfig": "otbtf_qgis.core.jobs.configs.modelserve",
    "SourceConfig": "otbtf_qgis.core.jobs.configs.modelserve",
    "EnvironmentInfoConfig": "otbtf_qgis.core.jobs.configs.environmentinfo",
    "DiagnosticsConfig": "otbtf_qgis.core.jobs.configs.diagnostics",
    "AccuracyAssessmentConfig": "otbtf_qgis.core.jobs.configs.accuracyassessment",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
