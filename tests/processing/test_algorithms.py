"""The contract of every algorithm that runs a worker job, checked in process without running a job.

``build_config`` gives the job config (the dataclass of ``otbtf_qgis.core.jobs.configs.<name>``),
and ``processAlgorithm`` only runs that config and maps the job's result to the outputs; a
value ``build_config`` refuses stops the algorithm before the worker starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

from otbtf_qgis.core.jobs.codec import config_from_dict, config_to_dict
from otbtf_qgis.processing.algorithm import OtbtfAlgorithm
from otbtf_qgis.processing.provider import algorithm_classes
from tests.processing.conftest import algorithm, as_parameters

JOB_ALGORITHMS = ["environmentinfo", "patchesselection", "patchesextraction", "createtfrecords", "trainmodel",
                  "receptivefield", "modelserve", "accuracyassessment"]


def minimal_parameters(name: str, folder: Path, out: Path) -> dict[str, Any]:
    """The mandatory parameters of ``otbtf:<name>`` (fixture files from ``folder``, outputs under ``out``)."""
    return as_parameters({
        "environmentinfo": {},
        "patchesselection": {"INPUT": folder / "image.tif", "OUTPUT_TRAIN": out / "train.gpkg"},
        "patchesextraction": {"SOURCES": [folder / "image.tif"], "POINTS": folder / "points.gpkg",
                              "OUTPUT_DIR": out / "patches"},
        "createtfrecords": {"INPUT": [out / "patches"], "OUTPUT_DIR": out / "tfrecords"},
        "trainmodel": {"TRAIN_DATA": out / "patches", "OUTPUT_MODEL": out / "model"},
        "receptivefield": {"MODEL": out / "model", "OUTPUT_HTML": out / "report.html"},
        "modelserve": {"SOURCES": [folder / "image.tif"], "MODEL": out / "model", "OUTPUT": out / "out.tif",
                       "OUTPUT_CLASSES": out / "classes.tif"},
        "accuracyassessment": {"INPUT": folder / "mask.tif", "REFERENCE": folder / "points.gpkg",
                               "CLASS_FIELD": "landcover", "OUTPUT_MATRIX": out / "matrix.csv"},
    }[name])


#: A bad value of each algorithm that build_config refuses, and the start of its message.
BAD_VALUES = {
    "patchesselection": ({"PATCH_SIZE": "64 64"}, "PATCH_SIZE: "),
    "patchesextraction": ({"NODATA": "auto"}, "NODATA: "),
    "createtfrecords": ({"INPUT": []}, "INPUT: "),
    "trainmodel": ({"TRAIN_DATA": ""}, "TRAIN_DATA: "),
    "receptivefield": ({"MODEL": ""}, "MODEL: "),
    "modelserve": ({"RFIELDS": "64;64"}, "RFIELDS: "),
    "accuracyassessment": ({"REFERENCE": None}, "REFERENCE: "),
}


def test_the_algorithms_that_run_a_job_build_its_config(qgis_app):
    builds = sorted(cls.NAME for cls in algorithm_classes() if cls.build_config is not OtbtfAlgorithm.build_config)
    assert builds == sorted(JOB_ALGORITHMS)
    with pytest.raises(NotImplementedError):
        algorithm("createenvironment").build_config({}, QgsProcessingContext(), QgsProcessingFeedback())


@pytest.mark.parametrize("name", JOB_ALGORITHMS)
def test_the_config_is_the_commands_and_reaches_the_worker_unchanged(qgis_app, name, layers_folder, tmp_path):
    config = algorithm(name).build_config(minimal_parameters(name, layers_folder, tmp_path), QgsProcessingContext(),
                                          QgsProcessingFeedback())
    assert type(config).__module__ == f"otbtf_qgis.core.jobs.configs.{name}"
    # what the worker rebuilds from the JSON it receives
    assert config_from_dict(type(config), json.loads(json.dumps(config_to_dict(config)))) == config


def job_results(out: Path) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Per algorithm: a result of its job, and the outputs the algorithm returns for it."""
    info = {"python": "3.11.2", "tensorflow": "2.21.0", "keras": "3.1", "numpy": "1.26.4", "gdal": "3.6.2",
            "tensorflow_devices": [{"name": "/cpu:0", "type": "CPU"}, {"name": "/gpu:0", "type": "GPU"}],
            "gpus": [{"name": "/physical_device:GPU:0", "model": "Tesla T4", "compute_capability": "7.5"}]}
    train = {"output_model": str(out / "model"), "metrics": {"loss": 0.5}, "serving": {"output_name": "p"},
             "tensorboard": str(out / "tb"), "training_folder": str(out / "model_training"),
             "history": str(out / "model" / "history.json"), "model_json": str(out / "model" / "otbtf_model.json")}
    return {
        "environmentinfo": (info, {"PYTHON": "3.11.2", "TENSORFLOW": "2.21.0", "KERAS": "3.1", "NUMPY": "1.26.4",
                                   "GDAL": "3.6.2", "DEVICES": "/cpu:0 (CPU), /gpu:0 (GPU)",
                                   "GPUS": "/physical_device:GPU:0 (Tesla T4, compute capability 7.5)",
                                   "REPORT": json.dumps(info)}),
        "patchesselection": ({"outputs": {"train": str(out / "train.gpkg")}, "counts": {"train": 5, "valid": 0}},
                             {"OUTPUT_TRAIN": str(out / "train.gpkg"), "OUTPUT_VALID": None, "OUTPUT_TEST": None,
                              "OUTPUT_LABELS": None, "OUTPUT_VALID_LABELS": None, "OUTPUT_TEST_LABELS": None,
                              "OUTPUT_POLYGONS": None, "N_TRAIN": 5, "N_VALID": 0, "N_TEST": 0}),
        "patchesextraction": ({"n_samples": 7, "manifest": str(out / "patches" / "manifest.json")},
                              {"OUTPUT_DIR": str(out / "patches"), "N_SAMPLES": 7,
                               "MANIFEST": str(out / "patches" / "manifest.json")}),
        "createtfrecords": ({"outputs": {"train": {"n_samples": 3}, "valid": {"n_samples": 2}}},
                            {"OUTPUT_DIR": str(out / "tfrecords"), "N_SAMPLES": 5}),
        "trainmodel": (train, {"OUTPUT_MODEL": str(out / "model"), "METRICS": '{"loss": 0.5}',
                               "SERVING": '{"output_name": "p"}', "TENSORBOARD": str(out / "tb"),
                               "TRAINING_FOLDER": str(out / "model_training"),
                               "HISTORY": str(out / "model" / "history.json"),
                               "MODEL_JSON": str(out / "model" / "otbtf_model.json")}),
        "receptivefield": ({"table": "| a |", "output_name": "p_crop16", "rfield": 64, "efield": 32,
                            "html": "<table></table>"},
                           {"TABLE": "| a |", "OUTPUT_NAME": "p_crop16", "RFIELD": 64, "EFIELD": 32,
                            "OUTPUT_HTML": str(out / "report.html")}),
        "modelserve": ({"width": 64, "height": 32, "bands": 3, "output_names": ["scores"], "tiles": 2,
                        "tile_size": [64, 16], "skipped_tiles": 0, "seconds": 0.5},
                       {"OUTPUT": str(out / "out.tif"), "OUTPUT_CLASSES": str(out / "classes.tif")}),
        "accuracyassessment": ({"outputs": {"matrix": str(out / "matrix.csv")}, "overall_accuracy": 0.9,
                                "overall_accuracy_low": 0.8, "overall_accuracy_high": 1.0, "kappa": 0.85,
                                "mean_f1": 0.88, "min_f1": 0.8, "class_metrics": {"crop": {"f1": 0.8}}},
                               {"OUTPUT_MATRIX": str(out / "matrix.csv"), "OUTPUT_REPORT": None,
                                "OUTPUT_CLASS_TABLE": None, "OVERALL_ACCURACY": 0.9, "OVERALL_ACCURACY_LOW": 0.8,
                                "OVERALL_ACCURACY_HIGH": 1.0, "KAPPA": 0.85, "MEAN_F1": 0.88, "MIN_F1": 0.8,
                                "CLASS_METRICS": '{"crop": {"f1": 0.8}}'}),
    }


@pytest.mark.parametrize("name", JOB_ALGORITHMS)
def test_process_algorithm_runs_the_built_config_and_maps_the_result(qgis_app, name, layers_folder, tmp_path,
                                                                    monkeypatch):
    parameters = minimal_parameters(name, layers_folder, tmp_path)
    result, outputs = job_results(tmp_path)[name]
    calls = []

    def run_job(command: str, params: dict[str, Any], feedback: Any, outputs: Any = ()) -> dict[str, Any]:
        calls.append((command, params, list(outputs)))
        return result

    alg = algorithm(name)
    monkeypatch.setattr(alg, "run_job", run_job)
    assert alg.processAlgorithm(parameters, QgsProcessingContext(), QgsProcessingFeedback()) == outputs
    config = algorithm(name).build_config(parameters, QgsProcessingContext(), QgsProcessingFeedback())
    assert calls == [(name, config_to_dict(config), calls[0][2])]
    # the outputs the worker writes (removed on failure or cancel) are the config's destinations
    destinations = {str(value) for key, value in parameters.items()
                    if alg.parameterDefinition(key).isDestination() and key != "OUTPUT_HTML"}
    assert set(calls[0][2]) == destinations
    if name == "receptivefield":
        assert (tmp_path / "report.html").read_text() == "<table></table>"


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_a_refused_value_stops_before_the_worker_starts(qgis_app, name, layers_folder, tmp_path, monkeypatch):
    bad, message = BAD_VALUES[name]
    parameters = {**minimal_parameters(name, layers_folder, tmp_path), **as_parameters(bad)}
    alg = algorithm(name)
    monkeypatch.setattr(alg, "run_job", lambda *args, **kwargs: pytest.fail("the worker was started"))
    with pytest.raises(QgsProcessingException, match=f"^{message}"):
        alg.processAlgorithm(parameters, QgsProcessingContext(), QgsProcessingFeedback())
    assert list(tmp_path.iterdir()) == []
