"""Jobs: what crosses the process boundary, on the standard library only.

A *job* is one worker command. This subpackage holds everything both sides of the
worker need, and nothing heavier than the standard library, so that the QGIS side
imports it without loading numpy, GDAL or TensorFlow (a test checks this in a fresh
interpreter):

- :mod:`~otbtf_qgis.core.jobs.configs` — one frozen config dataclass per command, in a
  module named after the command id (``configs/modelserve.py`` for ``otbtf:modelserve``);
- :mod:`~otbtf_qgis.core.jobs.codec` — configs to and from JSON and command-line options;
- :mod:`~otbtf_qgis.core.jobs.params` — the one grammar of sizes and per-source lists;
- :mod:`~otbtf_qgis.core.jobs.commands` — the command registry (config class + run function);
- :mod:`~otbtf_qgis.core.jobs.worker` — ``python -m otbtf_qgis.core``, the worker itself;
- :mod:`~otbtf_qgis.core.jobs.client` — starts a worker, follows its progress, cancels it;
- :mod:`~otbtf_qgis.core.jobs.environment` — builds the worker's virtual environment;
- :mod:`~otbtf_qgis.core.jobs.outputs` — temporary output names, atomic publishing, cleanup.
"""

from __future__ import annotations

from otbtf_qgis.core.lazy import lazy_exports

_EXPORTS = {
    "COMMANDS": "otbtf_qgis.core.jobs.commands",
    "CommandSpec": "otbtf_qgis.core.jobs.commands",
    "config_from_dict": "otbtf_qgis.core.jobs.codec",
    "config_to_dict": "otbtf_qgis.core.jobs.codec",
    "run_worker": "otbtf_qgis.core.jobs.client",
    "WorkerError": "otbtf_qgis.core.jobs.client",
    "create_worker_environment": "otbtf_qgis.core.jobs.environment",
    "parse_size": "otbtf_qgis.core.jobs.params",
    "parse_sizes": "otbtf_qgis.core.jobs.params",
    "split_list": "otbtf_qgis.core.jobs.params",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
