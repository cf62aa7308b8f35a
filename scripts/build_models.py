"""Build the graphical models shipped in ``resources/models`` (run with QGIS's Python).

``otbtf_workflow.model3`` chains the whole workflow: split labelled polygons into train,
valid and test sets by whole polygons and sample positions inside them (with a label
raster per set) → patches of the image and the labels → TFRecords → training of the FCNN
→ serving over the image (a probability raster and a class map) → accuracy assessment of
the map on the test polygons (a confusion matrix and a report). ``otb_bandmath_serve.model3`` preprocesses the
image with OTB (``otb:BandMathX``, QGIS's OTB provider) and serves a SavedModel on the
result (``otbtf:modelserve``). The files are generated, so that they always match the
algorithms' parameters; ``tests/processing/test_demo.py``
(``test_the_workflow_model_runs_headless``) and ``tests/processing/test_otb_models.py``
run them headless.

Usage: ``QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/build_models.py [NAME ...]``
(default: every model; ``otb_bandmath_serve`` needs Debian's OTB, ``make setup-otb``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "scripts"))
sys.path.append("/usr/share/qgis/python/plugins")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsProcessing,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication, QPointF  # noqa: E402

Source = QgsProcessingModelChildParameterSource


def parameter(model: QgsProcessingModelAlgorithm, definition: object, x: float, y: float) -> None:
    """Add a model input at a position of the canvas."""
    component = QgsProcessingModelParameter(definition.name())  # type: ignore[attr-defined]
    component.setPosition(QPointF(x, y))
    model.addModelParameter(definition, component)


def child(model: QgsProcessingModelAlgorithm, child_id: str, algorithm: str, x: float, y: float,
          sources: dict[str, list[QgsProcessingModelChildParameterSource]],
          outputs: dict[str, tuple[str, str]] | None = None) -> None:
    """Add a child algorithm with its parameter sources and the outputs it exposes."""
    step = QgsProcessingModelChildAlgorithm(algorithm)
    step.setChildId(child_id)
    step.setDescription(child_id.replace("_", " ").capitalize())
    step.setPosition(QPointF(x, y))
    for name, value in sources.items():
        step.addParameterSources(name, value)
    # The modeler wants a value for every mandatory parameter: give the algorithm's defaults.
    definitions = QgsApplication.processingRegistry().algorithmById(algorithm).parameterDefinitions()
    for definition in definitions:
        if definition.isDestination() or definition.name() in sources:
            continue
        if not definition.flags() & definition.FlagOptional and definition.defaultValue() is not None:
            step.addParameterSources(definition.name(), [Source.fromStaticValue(definition.defaultValue())])
    exposed = {}
    for model_name, (child_output, description) in (outputs or {}).items():
        output = QgsProcessingModelOutput(model_name, description)
        output.setChildId(child_id)
        output.setChildOutputName(child_output)
        output.setPosition(QPointF(x + 220, y + 40))
        exposed[model_name] = output
    step.setModelOutputs(exposed)
    model.addChildAlgorithm(step)


#: The workflow model's optional inputs: name → (description, default, minimum). A headless
#: ``qgis_process run`` of QGIS 3.22 does not apply a model input's default, so the children
#: read them through ``coalesce(@name, default)``: a run with only the required inputs works.
WORKFLOW_OPTIONS = {
    "patch_size": ("Patch size (pixels, a multiple of 16)", 32, 16),
    "step": ("Sampling step inside the polygons (pixels)", 2, 1),
    "max_per_class": ("Most positions per class and set (0: all)", 2000, 0),
    "epochs": ("Epochs", 12, 1),
}


def option(name: str) -> list[QgsProcessingModelChildParameterSource]:
    """The value of an optional workflow input, or its default when the run leaves it out."""
    return [Source.fromExpression(f"coalesce(@{name}, {WORKFLOW_OPTIONS[name][1]})")]


def workflow_model() -> QgsProcessingModelAlgorithm:
    """Selection by whole polygons → extraction → TFRecords → training → serving → accuracy assessment."""
    model = QgsProcessingModelAlgorithm("OTBTF workflow", "otbtf")
    model.setHelpContent({"ALG_DESC": (
        "The whole OTBTF workflow on one image and labelled polygons, with an honest accuracy: the polygons are "
        "split into train, valid and test sets by whole polygons (70/15/15 %, stratified per class), positions are "
        "sampled inside them, patches of the image and of each set's label raster (unlabelled pixels are ignored) "
        "become TFRecords, the FCNN is trained with flips, turns and MIX (the epoch of the best validation loss is "
        "kept), the model is served tile by tile over the image, and the class map is assessed on the test "
        "polygons only: a confusion matrix (CSV) and an HTML report with overall accuracy and its interval, kappa, "
        "per-class accuracies and area estimates.")})
    parameter(model, QgsProcessingParameterRasterLayer("image", "Image"), 20, 20)
    parameter(model, QgsProcessingParameterFeatureSource("polygons", "Labelled polygons",
                                                         [QgsProcessing.TypeVectorPolygon]), 20, 90)
    parameter(model, QgsProcessingParameterField("class_field", "Class field", parentLayerParameterName="polygons"),
              20, 160)
    for row, (name, (description, default, minimum)) in enumerate(WORKFLOW_OPTIONS.items()):
        parameter(model, QgsProcessingParameterNumber(name, description, QgsProcessingParameterNumber.Integer,
                                                      default, optional=True, minValue=minimum), 20, 230 + 70 * row)
    image = [Source.fromModelParameter("image")]
    class_field = [Source.fromModelParameter("class_field")]
    child(model, "select_positions", "otbtf:patchesselection", 300, 60, {
        "INPUT": image, "POLYGONS": [Source.fromModelParameter("polygons")], "CLASS_FIELD": class_field,
        "PATCH_SIZE": option("patch_size"), "STEP": option("step"), "STRATEGY": [Source.fromStaticValue("polygons")],
        "MAX_PER_CLASS": option("max_per_class"), "TRAIN_PROPORTION": [Source.fromStaticValue(0.7)],
        "VALID_PROPORTION": [Source.fromStaticValue(0.15)], "TEST_PROPORTION": [Source.fromStaticValue(0.15)],
        "SEED": [Source.fromStaticValue(42)],
    })
    sets = {"train": ("OUTPUT_TRAIN", "OUTPUT_LABELS"), "valid": ("OUTPUT_VALID", "OUTPUT_VALID_LABELS"),
            "test": ("OUTPUT_TEST", "OUTPUT_TEST_LABELS")}
    for row, (split, (points, labels)) in enumerate(sets.items()):
        child(model, f"extract_{split}", "otbtf:patchesextraction", 560, 20 + 140 * row, {
            "SOURCES": [Source.fromModelParameter("image"), Source.fromChildOutput("select_positions", labels)],
            "SOURCE_NAMES": [Source.fromStaticValue("xs,labels")], "PATCH_SIZES": option("patch_size"),
            "POINTS": [Source.fromChildOutput("select_positions", points)],
        })
        child(model, f"tfrecords_{split}", "otbtf:createtfrecords", 820, 20 + 140 * row, {
            "INPUT": [Source.fromChildOutput(f"extract_{split}", "MANIFEST")],
        })
    child(model, "train_fcnn", "otbtf:trainmodel", 1080, 80, {
        "TRAIN_DATA": [Source.fromChildOutput("tfrecords_train", "OUTPUT_DIR")],
        "VALID_DATA": [Source.fromChildOutput("tfrecords_valid", "OUTPUT_DIR")],
        "TEST_DATA": [Source.fromChildOutput("tfrecords_test", "OUTPUT_DIR")],
        "EPOCHS": option("epochs"), "BATCH_SIZE": [Source.fromStaticValue(16)],
        "LEARNING_RATE": [Source.fromStaticValue(0.001)], "SEED": [Source.fromStaticValue(42)],
        "AUGMENT": [Source.fromStaticValue(True)], "MIX": [Source.fromStaticValue(True)],
    }, {"model": ("OUTPUT_MODEL", "Trained model (SavedModel folder)")})
    child(model, "serve", "otbtf:modelserve", 1340, 80, {
        "SOURCES": image, "MODEL": [Source.fromChildOutput("train_fcnn", "OUTPUT_MODEL")],
    }, {"probabilities": ("OUTPUT", "Class probabilities"), "classes": ("OUTPUT_CLASSES", "Class map")})
    child(model, "assess", "otbtf:accuracyassessment", 1600, 80, {
        "INPUT": [Source.fromChildOutput("serve", "OUTPUT_CLASSES")],
        "REFERENCE": [Source.fromChildOutput("select_positions", "OUTPUT_POLYGONS")], "CLASS_FIELD": class_field,
        "SPLIT_FIELD": [Source.fromStaticValue("split")], "SPLIT_VALUE": [Source.fromStaticValue("test")],
    }, {"matrix": ("OUTPUT_MATRIX", "Confusion matrix on the test polygons"),
        "report": ("OUTPUT_REPORT", "Accuracy report on the test polygons")})
    return model


def otb_bandmath_serve_model() -> QgsProcessingModelAlgorithm:
    """OTB preprocessing (``otb:BandMathX``) chained into serving (``otbtf:modelserve``)."""
    model = QgsProcessingModelAlgorithm("OTB BandMathX then model serve", "otbtf")
    model.setHelpContent({"ALG_DESC": (
        "Preprocesses an image with the Orfeo ToolBox (BandMathX, through QGIS's OTB provider) and applies a "
        "SavedModel to the result, tile by tile (OTBTF's TensorflowModelServe). The expression computes every band "
        "of the model's input from the image im1 (e.g. 'im1 * 0.0001' to scale reflectances, "
        "'{im1b3;im1b2;im1b1}' to reorder bands); the result is written as float. Receptive field, expression "
        "field and outputs come from the model's otbtf_model.json unless given.")})
    parameter(model, QgsProcessingParameterRasterLayer("image", "Image"), 20, 20)
    parameter(model, QgsProcessingParameterString("expression", "BandMathX expression (im1 = the image)", "im1"),
              20, 90)
    parameter(model, QgsProcessingParameterFile("model", "SavedModel folder",
                                                behavior=QgsProcessingParameterFile.Folder), 20, 160)
    for row, (name, description) in enumerate((
            ("rfield", "Receptive field, e.g. 64 (empty: from the model)"),
            ("efield", "Expression field, e.g. 32 (empty: from the model)"),
            ("output_names", "Model outputs, e.g. predictions_crop16 (empty: from the model)"))):
        parameter(model, QgsProcessingParameterString(name, description, "", optional=True), 20, 230 + 70 * row)
    child(model, "preprocess", "otb:BandMathX", 300, 60, {
        "il": [Source.fromModelParameter("image")], "exp": [Source.fromModelParameter("expression")],
        # 5 is "float" in the provider's pixel types: the model gets the values as computed.
        "outputpixeltype": [Source.fromStaticValue(5)],
    })
    child(model, "serve", "otbtf:modelserve", 560, 60, {
        "SOURCES": [Source.fromChildOutput("preprocess", "out")], "MODEL": [Source.fromModelParameter("model")],
        "RFIELDS": [Source.fromModelParameter("rfield")], "EFIELD": [Source.fromModelParameter("efield")],
        "OUTPUT_NAMES": [Source.fromModelParameter("output_names")],
    }, {"probabilities": ("OUTPUT", "Model output"), "classes": ("OUTPUT_CLASSES", "Class map")})
    return model


MODELS: dict[str, Callable[[], QgsProcessingModelAlgorithm]] = {
    "otbtf_workflow": workflow_model,
    "otb_bandmath_serve": otb_bandmath_serve_model,
}


def configure_otb_provider(profile: Path) -> None:
    """Enable QGIS's OTB provider on Debian's OTB in the scratch ``profile`` (before QGIS starts)."""
    from configure_qgis_otb import check_installation, configure, find_app_folder

    otb_folder = Path("/usr")
    app_folder = find_app_folder(otb_folder)
    if app_folder is None:
        raise SystemExit("no OTB applications under /usr/lib: run make setup-otb")
    check_installation(otb_folder, app_folder)
    configure(profile, otb_folder, app_folder)


def check_otb_provider() -> None:
    """Fail clearly when QGIS's OTB provider (loaded by Processing) lists no ``otb:BandMathX``."""
    if QgsApplication.processingRegistry().algorithmById("otb:BandMathX") is None:
        raise SystemExit("QGIS's OTB provider lists no otb:BandMathX: run make setup-otb")


def main(argv: list[str] | None = None) -> None:
    """Write the shipped models (all, or those named on the command line)."""
    parser = argparse.ArgumentParser(description="Write the graphical models of resources/models.")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"models to write (default: {', '.join(MODELS)})")
    names = parser.parse_args(argv).names or list(MODELS)
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose among {', '.join(MODELS)}")
    needs_otb = any(name.startswith("otb_") for name in names)
    # A scratch profile: the OTB provider's settings must not touch the user's QGIS profile.
    with tempfile.TemporaryDirectory(prefix="otbtf-build-models-") as profile:
        os.environ["QGIS_CUSTOM_CONFIG_PATH"] = profile
        if needs_otb:
            configure_otb_provider(Path(profile))
        # With QGIS's names, QgsSettings reads the scratch profile (as qgis_process does).
        QCoreApplication.setOrganizationName("QGIS")
        QCoreApplication.setApplicationName("QGIS3")
        app = QgsApplication([], False)
        app.initQgis()
        from processing.core.Processing import Processing  # type: ignore[import-not-found]

        Processing.initialize()
        from otbtf_qgis.processing.provider import OtbtfProvider

        provider = OtbtfProvider()
        QgsApplication.processingRegistry().addProvider(provider)
        if needs_otb:
            check_otb_provider()
        for name in names:
            target = ROOT / "resources" / "models" / f"{name}.model3"
            model = MODELS[name]()
            errors = [f"{child_id}: {' '.join(messages)}" for child_id in model.childAlgorithms()
                      for ok, messages in [model.validateChildAlgorithm(child_id)] if not ok]
            if errors:
                raise SystemExit(f"invalid model {name}: " + "; ".join(errors))
            target.parent.mkdir(parents=True, exist_ok=True)
            if not model.toFile(str(target)):
                raise SystemExit(f"cannot write {target}")
            print(target)


if __name__ == "__main__":
    main()
