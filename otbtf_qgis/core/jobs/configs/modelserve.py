"""The configuration of a serving job (``otbtf:modelserve``), free of TensorFlow.

:class:`ServeConfig` describes what to serve: the sources (each one or more rasters
stacked by band, with a receptive field, the model input it feeds and an optional
nodata value), the SavedModel, the outputs and how to write them. Processing imports
this module to build the config, so it must never import TensorFlow; the engine that
executes it lives in :mod:`otbtf_qgis.core.serving.modelserve`.

Sizes are ``(x, y)`` (width, height) as in OTBTF's ``rfieldx/rfieldy``; a single value
means a square. Empty values mean "take it from the model" (its ``otbtf_model.json``,
then its serving signature).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, get_args

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.jobs.params import RasterInput, list_items, parse_nodata, parse_size, per_source

OutputType = Literal["float32", "float64", "uint8", "uint16", "int16", "int32", "uint32", "scaled_uint8",
                     "scaled_uint16"]
OUTPUT_TYPES: tuple[str, ...] = get_args(OutputType)
#: Scaled output types (for probabilities in [0, 1]): stored type, factor applied before
#: rounding, and the nodata value outside the stored range. GDAL and QGIS read
#: ``stored × scale`` with ``scale = 1 / factor`` (the band's scale metadata).
SCALED_TYPES: dict[str, tuple[str, int, int]] = {
    "scaled_uint8": ("uint8", 250, 255),
    "scaled_uint16": ("uint16", 10000, 65535),
}
#: A GDAL creation option: ``KEY=VALUE``, no space in either.
CREATION_OPTION = re.compile(r"^\s*[A-Za-z0-9_]+\s*=\s*\S+\s*$")
#: A Dask scheduler address: ``protocol://location`` (``tcp://host:8786``, ``tls://...``) or ``host:port``.
SCHEDULER_ADDRESS = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://[^\s/]\S*|[A-Za-z0-9_.-]+:\d+)$")
#: The forms SCHEDULER accepts, for error messages.
SCHEDULER_FORMS = ("local:N (N >= 1 worker processes on this machine), a Dask scheduler address such as "
                   "tcp://host:8786, or nothing to serve in this process")


def local_workers(scheduler: str) -> int | None:
    """The worker count of ``local:N``; ``None`` for a scheduler address or no scheduler.

    SCHEDULER is empty (serve in this process), ``local:N`` (a cluster of N worker
    processes started on this machine for the job) or the address of a running Dask
    scheduler (``tcp://host:8786``; ``host:port`` means ``tcp://``).

    Raises:
        InputError: naming ``SCHEDULER``, the value and the accepted forms.
    """
    text = scheduler.strip()
    if not text:
        return None
    kind, _, count = text.partition(":")
    if kind.lower() == "local":
        if count.isascii() and count.isdigit():
            if int(count) >= 1:
                return int(count)
            raise InputError(f"'{scheduler}' starts no worker: give local:N with N >= 1 (e.g. local:2). "
                             f"Accepted: {SCHEDULER_FORMS}.", "SCHEDULER")
        raise InputError(f"'{scheduler}' is not local:N with a whole number N >= 1 (e.g. local:2). "
                         f"Accepted: {SCHEDULER_FORMS}.", "SCHEDULER")
    if not SCHEDULER_ADDRESS.match(text):
        raise InputError(f"'{scheduler}' is not a scheduler. Accepted: {SCHEDULER_FORMS}.", "SCHEDULER")
    return None


def parse_user_placeholders(items: tuple[str, ...] | list[str] | str) -> dict[str, str]:
    """Parse ``"dropout=0.0;is_training=false"`` (or a list of ``name=value``) into a dict.

    Raises:
        InputError: on an item without ``=`` or with an empty name (parameter ``USER_PLACEHOLDERS``).
    """
    if isinstance(items, str):
        items = list_items(items)
    result: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InputError(f"'{item}' is not 'name=value'. Write e.g. dropout=0.0;is_training=false.",
                             "USER_PLACEHOLDERS")
        result[name.strip()] = value.strip()
    return result


@dataclass(frozen=True)
class SourceConfig:
    """One source: the raster(s) that feed one model input.

    Attributes:
        paths: One raster, or several with the same grid whose bands are stacked in order.
            From Python, pyotb objects are accepted too (see :mod:`otbtf_qgis.core.io.pyotb_inputs`).
        receptive_field: ``(x, y)`` or ``(size,)`` input pixels the model sees per output
            window of the expression field; empty: from the model.
        placeholder: The model input this source feeds; empty: from the model.
        nodata: Nodata value of the source; ``None``: the raster's own nodata value (if any).
        use_nodata: ``False`` ignores nodata entirely for this source.
    """

    paths: tuple[RasterInput, ...] = field(metadata={"param": "SOURCES", "help": "raster file(s) of the source"})
    receptive_field: tuple[int, ...] = field(default=(), metadata={
        "param": "RFIELDS", "help": "receptive field (x y) of the source; empty: from the model"})
    placeholder: str = field(default="", metadata={
        "param": "PLACEHOLDERS", "help": "model input fed by the source; empty: from the model"})
    nodata: float | None = field(default=None, metadata={
        "param": "NODATA", "help": "nodata value; empty: the raster's own"})
    use_nodata: bool = field(default=True, metadata={
        "param": "NODATA", "help": "false: never treat any value as nodata"})

    def __post_init__(self) -> None:
        if not self.paths:
            raise InputError("a source needs at least one raster.", "SOURCES")
        if self.receptive_field and (len(self.receptive_field) not in (1, 2) or min(self.receptive_field) <= 0):
            raise InputError(f"receptive field {list(self.receptive_field)} is not one or two positive integers.",
                             "RFIELDS")

    @property
    def receptive_field_xy(self) -> tuple[int, int] | None:
        """The receptive field as ``(x, y)``, or ``None`` when it comes from the model."""
        if not self.receptive_field:
            return None
        return (self.receptive_field[0], self.receptive_field[-1])


@dataclass(frozen=True)
class ServeConfig:
    """Apply a SavedModel over whole rasters, tile by tile (OTBTF's TensorflowModelServe).

    Attributes:
        sources: The sources, in the order of the model inputs they feed.
        model: The SavedModel folder.
        output: The output GeoTIFF; empty when only the class map (``output_classes``) is wanted.
        output_names: Model outputs to write, stacked as bands; empty: the model's default.
        expression_field: ``(x, y)`` or ``(size,)`` output pixels the model produces for an
            input of the receptive field; empty: from the model.
        fully_convolutional: One tensor per tile (``True``) or one patch per output pixel.
        spacing_scale: Output pixel size = first source's pixel size × this.
        tile_size: Output tile size in output pixels (rounded up to the expression field);
            0 picks it automatically.
        background: Output value (and nodata) of the pixels whose input is nodata.
        user_placeholders: Extra scalar model inputs, ``name=value``.
        output_type: Data type of the output raster; ``scaled_uint8``/``scaled_uint16`` store values in
            [0, 1] scaled (see :data:`SCALED_TYPES`), with the band scale to read them back.
        creation_options: GDAL GTiff creation options replacing the defaults key by key.
        cog: Write a Cloud Optimized GeoTIFF.
        output_classes: Optional class map (argmax of the first output, uint8, with a palette).
        extent: ``(xmin, ymin, xmax, ymax)`` in the output grid's CRS: serve only the output
            pixels covering it (snapped outward to whole pixels of the grid); empty: all.
        mask: A polygon layer (``path`` or ``path|layername=name``): output pixels whose
            centre is outside its polygons get BACKGROUND, tiles with none inside are skipped.
        scheduler: Where to compute: empty, this process; ``local:N``, N Dask worker
            processes on this machine; a Dask scheduler address (``tcp://host:8786``), the
            workers of that cluster, which must see the same paths (shared storage). See
            :func:`local_workers` and :mod:`otbtf_qgis.core.serving.distributed`.
    """

    sources: tuple[SourceConfig, ...] = field(metadata={
        "param": "SOURCES", "help": 'sources as JSON objects: {"paths": ["a.tif"], "receptive_field": [64]}'})
    model: str = field(metadata={"param": "MODEL", "help": "SavedModel folder"})
    output: str = field(metadata={"param": "OUTPUT", "help": "output GeoTIFF; empty: only the class map"})
    output_names: tuple[str, ...] = field(default=(), metadata={
        "param": "OUTPUT_NAMES", "help": "model outputs to write (stacked as bands); empty: the model's default"})
    expression_field: tuple[int, ...] = field(default=(), metadata={
        "param": "EFIELD", "help": "expression field (x y); empty: from the model"})
    fully_convolutional: bool = field(default=True, metadata={
        "param": "FULLYCONV", "help": "feed whole tiles (true) or one patch per output pixel (false)"})
    spacing_scale: float = field(default=1.0, metadata={
        "param": "SPCSCALE", "help": "output pixel size / first source pixel size"})
    tile_size: int = field(default=0, metadata={
        "param": "TILE_SIZE", "help": "output tile size in output pixels; 0: automatic"})
    background: float = field(default=0.0, metadata={
        "param": "BACKGROUND", "help": "value of output pixels whose input is nodata"})
    user_placeholders: tuple[str, ...] = field(default=(), metadata={
        "param": "USER_PLACEHOLDERS", "help": "extra scalar model inputs, name=value"})
    output_type: OutputType = field(default="float32", metadata={
        "param": "OUTPUT_TYPE", "help": "output data type"})
    creation_options: tuple[str, ...] = field(default=(), metadata={
        "param": "CREATION_OPTIONS", "help": "GTiff creation options (KEY=VALUE) replacing the defaults"})
    cog: bool = field(default=False, metadata={"param": "COG", "help": "write a Cloud Optimized GeoTIFF"})
    output_classes: str = field(default="", metadata={
        "param": "OUTPUT_CLASSES", "help": "optional class map (argmax of the first output)"})
    extent: tuple[float, ...] = field(default=(), metadata={
        "param": "EXTENT", "help": "xmin ymin xmax ymax in the output CRS: serve only this part; empty: all"})
    mask: str = field(default="", metadata={
        "param": "MASK", "help": "polygon layer (path or path|layername=x): serve only inside its polygons"})
    scheduler: str = field(default="", metadata={
        "param": "SCHEDULER", "help": "empty: this process; local:N: N Dask worker processes on this machine; "
                                      "tcp://host:port: a Dask cluster whose workers see the same paths"})

    def __post_init__(self) -> None:
        if not self.sources:
            raise InputError("give at least one source raster.", "SOURCES")
        if not self.model:
            raise InputError("give the SavedModel folder.", "MODEL")
        if not self.output and not self.output_classes:
            raise InputError("give the output raster file (OUTPUT), the class map (OUTPUT_CLASSES) or both.",
                             "OUTPUT")
        if self.expression_field and (len(self.expression_field) not in (1, 2) or min(self.expression_field) <= 0):
            raise InputError(f"expression field {list(self.expression_field)} is not one or two positive integers.",
                             "EFIELD")
        if not self.spacing_scale > 0:
            raise InputError(f"the spacing scale must be positive, got {self.spacing_scale}.", "SPCSCALE")
        if self.tile_size < 0:
            raise InputError(f"the tile size must be 0 (automatic) or positive, got {self.tile_size}.", "TILE_SIZE")
        if self.output_classes and self.output_classes == self.output:
            raise InputError("the class map must be a different file from OUTPUT.", "OUTPUT_CLASSES")
        if self.output_type not in OUTPUT_TYPES:
            raise InputError(f"'{self.output_type}' is not one of {', '.join(OUTPUT_TYPES)}.", "OUTPUT_TYPE")
        if self.output_type in SCALED_TYPES and self.background != 0:
            stored, _, nodata = SCALED_TYPES[self.output_type]
            raise InputError(f"BACKGROUND {self.background:g} cannot be used with OUTPUT_TYPE {self.output_type}: its "
                             f"pixels without a value are {stored} {nodata} (the band's nodata). Leave BACKGROUND at "
                             "0, or choose an unscaled OUTPUT_TYPE.", "BACKGROUND")
        if self.extent:
            if len(self.extent) != 4:
                raise InputError(f"the extent {list(self.extent)} is not 4 numbers xmin, ymin, xmax, ymax.", "EXTENT")
            xmin, ymin, xmax, ymax = self.extent
            if not (xmin < xmax and ymin < ymax):
                raise InputError(f"the extent {list(self.extent)} is empty: give xmin < xmax and ymin < ymax.",
                                 "EXTENT")
        parse_user_placeholders(self.user_placeholders)
        for option in self.creation_options:
            if not CREATION_OPTION.match(option):
                raise InputError(f"'{option}' is not KEY=VALUE (e.g. COMPRESS=LZW); separate several options with "
                                 "commas or semicolons.", "CREATION_OPTIONS")
        local_workers(self.scheduler)

    @property
    def expression_field_xy(self) -> tuple[int, int] | None:
        """The expression field as ``(x, y)``, or ``None`` when it comes from the model."""
        if not self.expression_field:
            return None
        return (self.expression_field[0], self.expression_field[-1])


def serve_config_from_text(sources: list[str], model: str, output: str, *, rfields: str = "", placeholders: str = "",
                           output_names: str = "", efield: str = "", fully_convolutional: bool = True,
                           spacing_scale: float = 1.0, tile_size: int = 0, nodata: str = "",
                           background: float = 0.0, user_placeholders: str = "", output_type: str = "float32",
                           creation_options: str = "", cog: bool = False, output_classes: str = "",
                           extent: tuple[float, ...] = (), mask: str = "",
                           scheduler: str = "") -> ServeConfig:
    """Build a :class:`ServeConfig` from the text parameters of ``otbtf:modelserve``.

    Lists follow the one grammar of :mod:`otbtf_qgis.core.jobs.params`: ``rfields``
    (``"64;32x32"``), ``placeholders`` and ``nodata`` are per-source lists (one value of
    RFIELDS or NODATA applies to every source; an empty entry takes the model's or the
    raster's default); ``output_names``, ``user_placeholders`` and ``creation_options``
    are lists. ``extent`` is ``(xmin, ymin, xmax, ymax)`` in the first source's CRS, ``mask``
    a polygon layer path; ``scheduler`` is one value (surrounding spaces ignored).

    Raises:
        InputError: naming the parameter whose text cannot be used.
    """
    count = len(sources)
    fields = [parse_size(v, "RFIELDS") if v else None for v in per_source(rfields, count, "RFIELDS")]
    names = per_source(placeholders, count, "PLACEHOLDERS", repeat=False)
    nodatas = [parse_nodata(v) for v in per_source(nodata, count, "NODATA")]
    source_configs = tuple(
        SourceConfig((path,), field if field is not None else (), name, value, use)
        for path, field, name, (value, use) in zip(sources, fields, names, nodatas, strict=True))
    return ServeConfig(
        sources=source_configs,
        model=model,
        output=output,
        output_names=tuple(list_items(output_names)),
        expression_field=parse_size(efield, "EFIELD") if efield.strip() else (),
        fully_convolutional=fully_convolutional,
        spacing_scale=spacing_scale,
        tile_size=tile_size,
        background=background,
        user_placeholders=tuple(list_items(user_placeholders)),
        output_type=output_type,  # type: ignore[arg-type]
        creation_options=tuple(list_items(creation_options)),
        cog=cog,
        output_classes=output_classes,
        extent=tuple(float(v) for v in extent),
        mask=mask,
        scheduler=scheduler.strip(),
    )
