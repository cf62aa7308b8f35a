"""Settings of the ``patchesselection`` job (numpy- and GDAL-free, shared by Processing, the CLI and Python).

The job itself is :func:`otbtf_qgis.core.data.patchesselection.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: How positions are shared between train, valid and test (see :mod:`otbtf_qgis.core.data.patchesselection`).
Strategy = Literal["split", "polygons", "chessboard", "balanced", "all"]


@dataclass(frozen=True)
class PatchesSelectionConfig:
    """Settings of patches selection (see :mod:`otbtf_qgis.core.data.patchesselection`)."""

    input: str = field(metadata={"param": "INPUT", "help": "reference raster"})
    output_train: str = field(metadata={"param": "OUTPUT_TRAIN", "help": "point layer of the training positions"})
    patch_size: str = field(default="64", metadata={"param": "PATCH_SIZE", "help": "patch size: 64 or 64x32 (x by y)"})
    step: str = field(default="", metadata={"param": "STEP",
                                            "help": "grid step in pixels, 32 or 32x16 (default: the patch size)"})
    offset: str = field(default="0", metadata={"param": "OFFSET", "help": "grid offset in pixels, 0 or 5x3"})
    strategy: Strategy = field(default="split", metadata={
        "param": "STRATEGY", "help": "split, polygons (whole polygons per set), chessboard, balanced or all"})
    train_proportion: float = field(default=0.6, metadata={"param": "TRAIN_PROPORTION", "help": "split: train share"})
    valid_proportion: float = field(default=0.2, metadata={"param": "VALID_PROPORTION", "help": "split: valid share"})
    test_proportion: float = field(default=0.2, metadata={"param": "TEST_PROPORTION", "help": "split: test share"})
    seed: int = field(default=0, metadata={"param": "SEED", "help": "random seed of the split"})
    mask: str = field(default="", metadata={"param": "MASK", "help": "optional mask raster (0 = excluded)"})
    nodata: float | None = field(default=None, metadata={"param": "NODATA",
                                                         "help": "nodata of INPUT (default: the raster's own)"})
    polygons: str = field(default="", metadata={"param": "POLYGONS", "help": "optional polygons to sample in"})
    class_field: str = field(default="", metadata={"param": "CLASS_FIELD", "help": "class field of POLYGONS"})
    output_valid: str = field(default="", metadata={"param": "OUTPUT_VALID", "help": "point layer (validation)"})
    output_test: str = field(default="", metadata={"param": "OUTPUT_TEST", "help": "point layer (test)"})
    output_labels: str = field(default="", metadata={
        "param": "OUTPUT_LABELS",
        "help": "optional label raster of the polygons on INPUT's grid (polygons strategy: the training ones)"})
    split_field: str = field(default="", metadata={
        "param": "SPLIT_FIELD", "help": "polygons strategy: field of POLYGONS holding train, valid or test"})
    max_per_class: int = field(default=0, metadata={
        "param": "MAX_PER_CLASS", "help": "at most this many positions of each class in each set (0: no cap)"})
    labels: str = field(default="", metadata={
        "param": "LABELS", "help": "balanced strategy: label raster on INPUT's grid (255 and nodata: unlabelled)"})
    output_valid_labels: str = field(default="", metadata={
        "param": "OUTPUT_VALID_LABELS", "help": "polygons strategy: label raster of the validation polygons"})
    output_test_labels: str = field(default="", metadata={
        "param": "OUTPUT_TEST_LABELS", "help": "polygons strategy: label raster of the test polygons"})
    output_polygons: str = field(default="", metadata={
        "param": "OUTPUT_POLYGONS", "help": "the polygons with their set in a field 'split' (train, valid, test)"})
