"""Export a trained model: the SavedModel, ``otbtf_model.json`` and ``history.json``, published atomically.

The SavedModel's serving signature takes the model inputs by name (dynamic height and
width) and returns every output by layer name, cropped ones included (see
:class:`otbtf_qgis.core.models.base.ModelBase`). ``otbtf_model.json`` (docs/formats.md) tells
serving what to use by default: the padding-free cropped output of the class output for
the training patch size, with its receptive and expression fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

from otbtf_qgis.core.errors import InputError, ModelError
from otbtf_qgis.core.io.windows import round_up
from otbtf_qgis.core.jobs.outputs import PARTIAL_MARK, atomic_output
from otbtf_qgis.core.models.base import ModelBase
from otbtf_qgis.core.models.graph import analyze_function, keras_model_function
from otbtf_qgis.core.models.receptive_field import (
    ReceptiveFieldReport,
    cropped_outputs,
    output_order,
)
from otbtf_qgis.core.models.saved_model import METADATA_FILE, is_saved_model
from otbtf_qgis.core.progress import NullReporter, Reporter

MODEL_FORMAT = "otbtf_qgis-model/1"
HISTORY_JSON = "history.json"
#: The training target whose output is the class probabilities.
TARGET_KEY = "predictions"


def check_model_folder(path: str | Path, parameter: str = "OUTPUT_MODEL") -> Path:
    """Check an output model folder before training: new, empty, or a model of ours (then replaced).

    Raises:
        InputError: the path is empty, a file, or a folder holding other files.
    """
    text = str(path).strip()
    if not text:
        raise InputError("no output folder given. Choose a new or empty folder for the model.", parameter)
    folder = Path(text)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"'{folder}' is a file, not a folder. Choose a new or empty folder for the model.",
                         parameter)
    if folder.is_dir():
        entries = sorted(e.name for e in folder.iterdir() if PARTIAL_MARK not in e.name)
        ours = (folder / METADATA_FILE).is_file() or is_saved_model(folder)
        if entries and not ours:
            shown = ", ".join(entries[:5]) + (", …" if len(entries) > 5 else "")
            raise InputError(f"the folder '{folder}' holds files that are not a model ({shown}). The output must "
                             "be a new or empty folder, or a previous model (which is replaced).", parameter)
    return folder


def class_output_name(model: ModelBase) -> str:
    """Name of the exported output holding the class probabilities (``predictions``' layer)."""
    names = model.output_names_by_key
    return names.get(TARGET_KEY) or next(iter(names.values()))


def analyse_model(model: ModelBase, patch_sizes: Mapping[str, tuple[int, int]],
                  reporter: Reporter | None = None) -> ReceptiveFieldReport | None:
    """Padding-free geometry of ``model`` for its training patch sizes ``{input: (rows, cols)}``; None if unknown."""
    specs = {key: tf.TensorSpec([1, rows, cols, int(model.inputs_shapes[key][-1])],
                                tf.as_dtype(model.inputs_dtypes[key]), name=key)
             for key, (rows, cols) in patch_sizes.items()}
    try:
        return analyze_function(keras_model_function(model.inference_model), specs, class_output_name(model),
                                reporter)
    except ModelError as exc:
        (reporter or NullReporter()).warning(f"the receptive field of the model is unknown ({exc.message}); "
                                             "serving defaults fall back to the largest crop.")
        return None


#: How many times the training patch a serving input may be, at most, to find a padding-free output.
MAX_SERVING_SCALE = 8


def serving_report(model: ModelBase, patch_sizes: Mapping[str, tuple[int, int]],
                   reporter: Reporter | None = None) -> ReceptiveFieldReport | None:
    """The geometry to serve with: at the training patch size, or the smallest multiple of it that is seamless.

    A fully-convolutional model trained on small patches (say 32 pixels) may have no cropped
    output that removes every padding-affected pixel at that size: served so, its tiles
    would meet with seams. Its inputs are then doubled (up to :data:`MAX_SERVING_SCALE`
    times the patch) until a cropped output is padding-free, and that size becomes the
    serving default.
    """
    reporter = reporter or NullReporter()
    report = analyse_model(model, patch_sizes, reporter)
    scale = 2
    while report is not None and not report.seamless and report.method == "analytic" and scale <= MAX_SERVING_SCALE:
        larger = {key: (rows * scale, cols * scale) for key, (rows, cols) in patch_sizes.items()}
        candidate = analyse_model(model, larger, reporter)
        if candidate is not None and candidate.seamless:
            first = next(iter(larger.values()))
            reporter.info(f"the training patches leave no padding-free output; the serving default is an input of "
                          f"{first[1]}×{first[0]} pixels ({candidate.recommended_output}).")
            return candidate
        scale *= 2
    return report


def describe_model(model: ModelBase, patch_sizes: Mapping[str, tuple[int, int]], class_names: Sequence[str],
                   report: ReceptiveFieldReport | None, training: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``otbtf_model.json`` (sizes as ``[x, y]``)."""
    first = next(iter(patch_sizes))
    rows, cols = patch_sizes[first]
    inputs = {key: {"bands": int(model.inputs_shapes[key][-1]), "dtype": model.inputs_dtypes[key],
                    "patch_size": [patch_sizes[key][1], patch_sizes[key][0]]} for key in patch_sizes}
    class_output = class_output_name(model)
    outputs = sorted(model.inference_output_names, key=output_order)
    tensors = dict(model.inference_model.output)
    channels = tensors[class_output].shape[-1] if class_output in tensors else None
    n_classes = int(channels) if channels is not None else None
    step = report.size_step if report else 1
    cropped: dict[str, Any] = {}
    for name, (base, crop) in cropped_outputs(outputs).items():
        rf_x = cols if cols - 2 * crop >= 1 else round_up(2 * crop + step, step)
        rf_y = rows if rows - 2 * crop >= 1 else round_up(2 * crop + step, step)
        cropped[name] = {"output": base, "crop": crop, "receptive_field": [rf_x, rf_y],
                         "expression_field": [rf_x - 2 * crop, rf_y - 2 * crop]}
    serving = _serving_defaults(class_output, cropped, report, (cols, rows))
    if serving["output_name"] in cropped:  # the analysed geometry of the recommended crop wins
        cropped[serving["output_name"]].update(receptive_field=serving["receptive_field"],
                                               expression_field=serving["expression_field"])
    description: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "inputs": inputs,
        "outputs": outputs,
        "class_output": class_output,
        "n_classes": n_classes,
        "class_names": list(class_names),
        "cropped_outputs": cropped,
        "serving": serving,
    }
    if training is not None:
        description["training"] = dict(training)
    return description


def _serving_defaults(class_output: str, cropped: Mapping[str, Any], report: ReceptiveFieldReport | None,
                      patch_xy: tuple[int, int]) -> dict[str, Any]:
    """The recommended crop when the geometry is known, else the largest crop that fits the patch."""
    if report is not None and report.recommended_output and report.receptive_field and report.expression_field:
        return {"output_name": report.recommended_output, "receptive_field": list(report.receptive_field),
                "expression_field": list(report.expression_field)}
    fitting = sorted((c["crop"], name) for name, c in cropped.items()
                     if c["output"] == class_output and c["receptive_field"] == list(patch_xy))
    if fitting:
        crop, name = fitting[-1]
        return {"output_name": name, "receptive_field": list(patch_xy),
                "expression_field": [patch_xy[0] - 2 * crop, patch_xy[1] - 2 * crop]}
    return {"output_name": class_output, "receptive_field": list(patch_xy), "expression_field": list(patch_xy)}


def export_model(model: ModelBase, output: str | Path, patch_sizes: Mapping[str, tuple[int, int]],
                 class_names: Sequence[str] = (), training: Mapping[str, Any] | None = None,
                 history: Mapping[str, Any] | None = None,
                 reporter: Reporter | None = None) -> dict[str, Any]:
    """Write the SavedModel with ``otbtf_model.json`` (and ``history.json``) to ``output``, atomically.

    Args:
        model: The trained model.
        output: The SavedModel folder (replaced if it exists).
        patch_sizes: Training patch size ``(rows, cols)`` per model input.
        class_names: Class names by index.
        training: The ``training`` section of the JSON (patch size, epochs, metrics, ...).
        history: Per-epoch metrics (``{"epoch": [...], "loss": [...], ...}``, and ``exported_epoch``) for
            ``history.json``.
        reporter: Receives warnings.

    Returns:
        The content of ``otbtf_model.json``.
    """
    reporter = reporter or NullReporter()
    report = serving_report(model, patch_sizes, reporter)
    description = describe_model(model, patch_sizes, class_names, report, training)
    with atomic_output(output, "OUTPUT_MODEL") as temp:
        model.export(temp)
        (temp / METADATA_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
        if history is not None:
            (temp / HISTORY_JSON).write_text(json.dumps(dict(history), indent=2) + "\n", encoding="utf-8")
    return description
