"""Build the graphical models shipped in ``resources/models`` (run with QGIS's Python).

``otbtf_workflow.model3`` chains the whole workflow: sample positions inside labelled
polygons (with a label raster) → patches of the image and the labels for the training
and validation points → TFRecords → training of the FCNN → serving over the image, giving
a probability raster and a class map. The file is generated, so that it always matches
the algorithms' parameters; ``tests/processing/test_models.py`` runs it headless.

Usage: ``QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/build_models.py``
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
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
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QPointF  # noqa: E402

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


def workflow_model() -> QgsProcessingModelAlgorithm:
    """The selection → extraction → TFRecords → training → serving chain."""
    model = QgsProcessingModelAlgorithm("OTBTF workflow", "otbtf")
    model.setHelpContent({"ALG_DESC": (
        "The whole OTBTF workflow on one image and labelled polygons: positions inside the polygons, patches of the "
        "image and of a label raster made from the polygons (unlabelled pixels are ignored in training), TFRecords, "
        "training of the FCNN, and tile-by-tile cropped inference over the image.")})
    parameter(model, QgsProcessingParameterRasterLayer("image", "Image"), 20, 20)
    parameter(model, QgsProcessingParameterFeatureSource("polygons", "Labelled polygons",
                                                         [QgsProcessing.TypeVectorPolygon]), 20, 90)
    parameter(model, QgsProcessingParameterField("class_field", "Class field", parentLayerParameterName="polygons"),
              20, 160)
    parameter(model, QgsProcessingParameterNumber("patch_size", "Patch size", QgsProcessingParameterNumber.Integer,
                                                  64, minValue=16), 20, 230)
    parameter(model, QgsProcessingParameterNumber("step", "Sampling step (pixels)",
                                                  QgsProcessingParameterNumber.Integer, 2, minValue=1), 20, 300)
    parameter(model, QgsProcessingParameterNumber("epochs", "Epochs", QgsProcessingParameterNumber.Integer, 40,
                                                  minValue=1), 20, 370)
    image = [Source.fromModelParameter("image")]
    patch_size = [Source.fromModelParameter("patch_size")]
    child(model, "select_positions", "otbtf:patchesselection", 300, 60, {
        "INPUT": image, "POLYGONS": [Source.fromModelParameter("polygons")],
        "CLASS_FIELD": [Source.fromModelParameter("class_field")], "PATCH_SIZE": patch_size,
        "STEP": [Source.fromModelParameter("step")], "STRATEGY": [Source.fromStaticValue("split")],
        "TRAIN_PROPORTION": [Source.fromStaticValue(0.75)], "VALID_PROPORTION": [Source.fromStaticValue(0.25)],
        "TEST_PROPORTION": [Source.fromStaticValue(0.0)], "SEED": [Source.fromStaticValue(42)],
    })
    for row, split in enumerate(("train", "valid")):
        points = "OUTPUT_TRAIN" if split == "train" else "OUTPUT_VALID"
        child(model, f"extract_{split}", "otbtf:patchesextraction", 560, 20 + 140 * row, {
            "SOURCES": [Source.fromModelParameter("image"),
                        Source.fromChildOutput("select_positions", "OUTPUT_LABELS")],
            "SOURCE_NAMES": [Source.fromStaticValue("xs,labels")], "PATCH_SIZES": patch_size,
            "POINTS": [Source.fromChildOutput("select_positions", points)],
        })
        child(model, f"tfrecords_{split}", "otbtf:createtfrecords", 820, 20 + 140 * row, {
            "INPUT": [Source.fromChildOutput(f"extract_{split}", "MANIFEST")],
        })
    child(model, "train_fcnn", "otbtf:trainmodel", 1080, 80, {
        "TRAIN_DATA": [Source.fromChildOutput("tfrecords_train", "OUTPUT_DIR")],
        "VALID_DATA": [Source.fromChildOutput("tfrecords_valid", "OUTPUT_DIR")],
        "EPOCHS": [Source.fromModelParameter("epochs")], "BATCH_SIZE": [Source.fromStaticValue(8)],
        "LEARNING_RATE": [Source.fromStaticValue(0.001)], "SEED": [Source.fromStaticValue(42)],
        "AUGMENT": [Source.fromStaticValue(True)],
    }, {"model": ("OUTPUT_MODEL", "Trained model (SavedModel folder)")})
    child(model, "serve", "otbtf:modelserve", 1340, 80, {
        "SOURCES": image, "MODEL": [Source.fromChildOutput("train_fcnn", "OUTPUT_MODEL")],
    }, {"probabilities": ("OUTPUT", "Class probabilities"), "classes": ("OUTPUT_CLASSES", "Class map")})
    return model


def main() -> None:
    """Write every shipped model."""
    app = QgsApplication([], False)
    app.initQgis()
    from processing.core.Processing import Processing  # type: ignore[import-not-found]

    Processing.initialize()
    from otbtf_qgis.processing.provider import OtbtfProvider

    provider = OtbtfProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    target = ROOT / "resources" / "models" / "otbtf_workflow.model3"
    model = workflow_model()
    errors = [f"{child_id}: {' '.join(messages)}" for child_id in model.childAlgorithms()
              for ok, messages in [model.validateChildAlgorithm(child_id)] if not ok]
    if errors:
        raise SystemExit("invalid model: " + "; ".join(errors))
    if not model.toFile(str(target)):
        raise SystemExit(f"cannot write {target}")
    print(target)


if __name__ == "__main__":
    main()
