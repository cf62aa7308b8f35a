"""The sentences every algorithm's help uses for lists typed as text, in one place.

They describe, in the same words everywhere, the one grammar of
:mod:`otbtf_qgis.core.jobs.params` (which parses the text: Processing never splits a
list itself). Algorithms put :data:`LIST_GRAMMAR` in their help when they have a list
or per-source parameter, :data:`SIZE_GRAMMAR` when they have a size, and use the
``*_HINT`` fragments in the descriptions of those parameters.
"""

from __future__ import annotations

#: How sizes are written (``PATCH_SIZE``, ``STEP``, ``OFFSET``, ``PATCH_SIZES``, ``RFIELDS``, ``EFIELD``).
SIZE_GRAMMAR = "A size is 64 (square) or 64x32 (x by y: columns by rows)."

#: How lists and per-source lists are written, with what a nodata entry may be.
LIST_GRAMMAR = (
    "Lists are typed as text: items separated by commas, semicolons or line breaks (spaces around an item are "
    "ignored; spaces do not separate items). A per-source list takes one value for every source, or one value per "
    "source in the order of the sources; an empty entry takes that source's default, and an empty text the "
    "defaults of all sources. Names are never repeated for every source: give one per source. A NODATA entry is a "
    "number, none (no value is nodata) or empty (the raster's own nodata). " + SIZE_GRAMMAR
)

#: Parameter descriptions: a per-source list of sizes.
SIZES_HINT = "64 or 64x32; one for all sources or one per source"
#: Parameter descriptions: a per-source list of names.
NAMES_HINT = "one per source"
#: Parameter descriptions: a per-source list of nodata entries.
NODATA_HINT = "a number, none, or empty: the raster's own; one for all sources or one per source"
#: Parameter descriptions: a list.
LIST_HINT = "separated by commas or semicolons"

