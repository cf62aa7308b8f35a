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


#: ``otbtf:modelserve``: what EXTENT does.
EXTENT_HELP = (
    "EXTENT serves only the part of the output grid that covers it: the output keeps the grid's pixel size and "
    "alignment (the extent is enlarged to whole output pixels), so its pixels equal those of a run over the whole "
    "image. An extent in another CRS is reprojected to the first source's CRS."
)
#: ``otbtf:modelserve``: what MASK does.
MASK_HELP = (
    "MASK (polygons) serves only inside the polygons: output pixels whose centre is outside every polygon get "
    "BACKGROUND (the output's nodata), and tiles without any pixel inside are not computed. A mask in another CRS "
    "is reprojected; a layer with a selection or a filter is used as QGIS shows it."
)
#: ``otbtf:modelserve``: the scaled output types.
OUTPUT_TYPE_HELP = (
    "For probabilities (values in [0, 1]) choose OUTPUT_TYPE scaled_uint8 (value x 250, 1/4 of a float32 file, "
    "steps of 0.004) or scaled_uint16 (value x 10000, steps of 0.0001): the band's scale metadata makes QGIS and "
    "GDAL read the probabilities back; their nodata is 255 and 65535 respectively, and BACKGROUND stays 0. The "
    "plain uint8/uint16 types round the values themselves (for outputs that are already integers)."
)
