"""Class map colours."""

from __future__ import annotations

from otbtf_qgis.core.serving.output import CLASS_PALETTE, NAMED_CLASS_COLORS, class_palette


def test_known_land_cover_names_get_conventional_colours():
    colors = class_palette(["crop", "developed", "tree", "Water"], 4)
    assert colors == [NAMED_CLASS_COLORS["crop"], NAMED_CLASS_COLORS["developed"], NAMED_CLASS_COLORS["tree"],
                      (30, 90, 200)]


def test_unknown_names_and_missing_names_use_the_qualitative_palette():
    assert class_palette(["a", "water"], 3) == [CLASS_PALETTE[0], NAMED_CLASS_COLORS["water"], CLASS_PALETTE[2]]
    assert class_palette([], 25)[21] == CLASS_PALETTE[1]
