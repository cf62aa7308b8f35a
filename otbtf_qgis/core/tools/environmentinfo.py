"""The ``environmentinfo`` job: what a user attaches to a bug report."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from otbtf_qgis.core.jobs.configs.environmentinfo import EnvironmentInfoConfig, gpu_summary
from otbtf_qgis.core.progress import Reporter


def run(config: EnvironmentInfoConfig, reporter: Reporter) -> dict[str, Any]:
    """Collect versions and TensorFlow's devices in this interpreter."""
    import numpy
    from osgeo import gdal

    import otbtf_qgis

    reporter.progress(0.1)
    import tensorflow as tf

    reporter.progress(0.6)
    import keras

    devices = [{"name": d.name, "type": d.device_type} for d in tf.config.list_physical_devices()]
    gpus = [gpu_report(gpu.name, tf.config.experimental.get_device_details(gpu))
            for gpu in tf.config.list_physical_devices("GPU")]
    build = tf.sysconfig.get_build_info()
    info: dict[str, Any] = {
        "otbtf_qgis": otbtf_qgis.__version__,
        "otbtf_qgis_path": os.path.dirname(os.path.abspath(otbtf_qgis.__file__)),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "gdal": gdal.__version__,
        "tensorflow_devices": devices,
        "tensorflow_built_with_cuda": bool(build.get("is_cuda_build", False)),
        "gpus": gpus,
    }
    for key in ("python", "tensorflow", "keras", "numpy", "gdal"):
        reporter.info(f"{key}: {info[key]}")
    reporter.info("devices: " + ", ".join(f"{d['name']} ({d['type']})" for d in devices))
    reporter.info(f"GPUs: {gpu_summary(gpus)}")
    reporter.progress(1.0)
    return info


def gpu_report(name: str, details: dict[str, Any]) -> dict[str, Any]:
    """One GPU TensorFlow sees: its device name, model and compute capability (from TensorFlow's device details)."""
    capability = details.get("compute_capability")
    return {"name": name, "model": str(details.get("device_name", "")),
            "compute_capability": ".".join(map(str, capability)) if capability else None}

