"""Settings of the ``accuracyassessment`` job (numpy- and GDAL-free, shared by Processing, the CLI and Python).

The job itself is :func:`otbtf_qgis.core.assessment.accuracyassessment.run`: a class map
and reference data (a vector layer of polygons or points, or a label raster on the map's
grid) give a confusion matrix, overall accuracy with its confidence interval, kappa,
per-class user's and producer's accuracies and F1, and area estimates (Olofsson et al.
2014).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from otbtf_qgis.core.errors import InputError


@dataclass(frozen=True)
class AccuracyAssessmentConfig:
    """Settings of an accuracy assessment (see :mod:`otbtf_qgis.core.assessment.accuracyassessment`).

    Exactly one of ``reference`` (with ``class_field``) and ``reference_raster`` is given.
    """

    input: str = field(metadata={"param": "INPUT", "help": "class map: single-band integer raster"})
    output_matrix: str = field(metadata={"param": "OUTPUT_MATRIX", "help": "confusion matrix (CSV)"})
    reference: str = field(default="", metadata={
        "param": "REFERENCE", "help": "reference polygons or points (any CRS)"})
    class_field: str = field(default="", metadata={
        "param": "CLASS_FIELD", "help": "class field of REFERENCE: class names or integer codes"})
    reference_raster: str = field(default="", metadata={
        "param": "REFERENCE_RASTER", "help": "reference label raster on the map's grid (its nodata and 255: none)"})
    split_field: str = field(default="", metadata={
        "param": "SPLIT_FIELD", "help": "optional field of REFERENCE: only features where it equals SPLIT_VALUE"})
    split_value: str = field(default="test", metadata={
        "param": "SPLIT_VALUE", "help": "value of SPLIT_FIELD of the features to assess"})
    nodata: float | None = field(default=None, metadata={
        "param": "NODATA", "help": "nodata of INPUT (default: the raster's own)"})
    class_names: tuple[str, ...] = field(default=(), metadata={
        "param": "CLASS_NAMES", "help": "class names of the map's codes 0, 1, 2…, replacing the map's own"})
    output_report: str = field(default="", metadata={"param": "OUTPUT_REPORT", "help": "optional report (HTML)"})
    output_class_table: str = field(default="", metadata={
        "param": "OUTPUT_CLASS_TABLE", "help": "optional per-class table (CSV)"})

    def __post_init__(self) -> None:
        if not self.input:
            raise InputError("no class map given. Choose a single-band integer raster (e.g. the class map of "
                             "Model serve).", "INPUT")
        if not self.output_matrix:
            raise InputError("no output given for the confusion matrix. Choose a CSV file.", "OUTPUT_MATRIX")
        if self.reference and self.reference_raster:
            raise InputError("both REFERENCE and REFERENCE_RASTER given: give one reference, either a vector layer "
                             "(REFERENCE with CLASS_FIELD) or a label raster (REFERENCE_RASTER).", "REFERENCE")
        if not self.reference and not self.reference_raster:
            raise InputError("neither REFERENCE nor REFERENCE_RASTER given: give one reference, either a vector "
                             "layer (REFERENCE with CLASS_FIELD) or a label raster on the map's grid "
                             "(REFERENCE_RASTER).", "REFERENCE")
        if self.reference and not self.class_field:
            raise InputError("no class field given for REFERENCE. Choose the field holding the reference class "
                             "(class names or integer codes).", "CLASS_FIELD")
        if self.reference_raster and (self.class_field or self.split_field):
            name = "CLASS_FIELD" if self.class_field else "SPLIT_FIELD"
            raise InputError(f"{name} applies to a vector REFERENCE, not to REFERENCE_RASTER (whose pixel values "
                             f"are the classes). Leave {name} empty.", name)
        outputs = [(p, name) for p, name in ((self.output_matrix, "OUTPUT_MATRIX"),
                                             (self.output_report, "OUTPUT_REPORT"),
                                             (self.output_class_table, "OUTPUT_CLASS_TABLE")) if p]
        seen: dict[str, str] = {}
        for path, name in outputs:
            if path in seen:
                raise InputError(f"'{path}' is also {seen[path]}: give each output its own file.", name)
            seen[path] = name
