"""A serving job resolved: sources, model, geometry, tile size and outputs, checked once.

:func:`prepare` resolves a :class:`~otbtf_qgis.core.jobs.configs.modelserve.ServeConfig`
into a :class:`ServingPlan`: the sources are opened and checked, the model's signature is
matched to them, missing settings come from ``otbtf_model.json`` (then from the
signature, then from probing the model), the output grid and the tile size are computed
(see :mod:`~otbtf_qgis.core.serving.geometry`) and the model is traced once for the tile
shape. Every region of the output grid is then served from the same plan
(:func:`otbtf_qgis.core.serving.stream.serve_plan`).

Sources given as pyotb objects are written by OTB to temporary files when the plan is
prepared (see :mod:`otbtf_qgis.core.io.pyotb_inputs`); the plan owns them until
:meth:`ServingPlan.close`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from otbtf_qgis.core.errors import InputError, ModelError
from otbtf_qgis.core.io.pyotb_inputs import ScratchRasters, file_path
from otbtf_qgis.core.io.raster import RasterInfo, raster_info, same_crs
from otbtf_qgis.core.io.windows import Window, from_bounds, intersection, round_up, tile_grid
from otbtf_qgis.core.jobs.configs.modelserve import ServeConfig, parse_user_placeholders
from otbtf_qgis.core.jobs.outputs import ensure_writable_parent
from otbtf_qgis.core.models.saved_model import (
    ServingModel,
    TensorInfo,
    TileFunction,
    concurrent_tiles,
    gpu_devices,
    parse_constant,
)
from otbtf_qgis.core.progress import NullReporter, Reporter
from otbtf_qgis.core.serving.geometry import (
    ServingGeometry,
    SourceGeometry,
    auto_tile_size,
    axis_grids,
    common_extent,
    footprint_length,
    rational,
)
from otbtf_qgis.core.serving.mask import ServingMask
from otbtf_qgis.core.serving.output import block_size, class_map_dtype, merged_creation_options, stored_type

#: Largest input tile side (pixels) of the automatic tile size. Big tiles are the main
#: performance lever (the serving benchmark compares tile sizes), bounded here to bound memory.
MAX_INPUT_TILE = 1088
#: Memory for the patches of one tile in patch-based mode (bytes).
PATCH_TILE_BYTES = 64 << 20


@dataclass(frozen=True)
class SourcePlan:
    """One source, resolved.

    Attributes:
        paths: Its raster(s), bands stacked in order.
        file_bands: Band count of each raster.
        placeholder: The model input it feeds.
        receptive_field: ``(x, y)``.
        nodata: Its nodata value, or ``None`` when nodata is not used.
        dtype: The model input's dtype (what reads are cast to).
        info: Description of its first raster.
    """

    paths: tuple[str, ...]
    file_bands: tuple[int, ...]
    placeholder: str
    receptive_field: tuple[int, int]
    nodata: float | None
    dtype: str
    info: RasterInfo

    @property
    def bands(self) -> int:
        """Bands of the source (all rasters)."""
        return sum(self.file_bands)

    @property
    def fill_value(self) -> float:
        """Value of input pixels outside the raster: its nodata, else 0."""
        return 0.0 if self.nodata is None else self.nodata


class ServingPlan:
    """Everything resolved to serve: sources, model, geometry, tile size, outputs.

    Build it with :func:`prepare`; serve it once per region
    (:func:`otbtf_qgis.core.serving.stream.serve_plan`), then :meth:`close` it (or use the
    plan as a context manager) to remove the temporary files of pyotb sources.
    """

    def __init__(self, config: ServeConfig, model: ServingModel, sources: list[SourcePlan],
                 output_names: list[str], geometry: ServingGeometry, tile_size: tuple[int, int],
                 constants: dict[str, npt.NDArray[Any]], creation_options: list[str],
                 block_size: tuple[int, int]) -> None:
        self.config = config
        self.model = model
        self.sources = sources
        self.output_names = output_names
        self.geometry = geometry
        self.tile_size = tile_size
        self.constants = constants
        self.creation_options = creation_options
        self.block_size = block_size
        self.fully_convolutional = config.fully_convolutional
        self.geotransform = geometry.geotransform(sources[0].info.geotransform, config.fully_convolutional)
        self.crs_wkt = sources[0].info.crs_wkt
        self.uses_nodata = any(s.nodata is not None for s in sources)
        self.mask = ServingMask(config.mask, self.crs_wkt) if config.mask else None
        self.extent_window = self._extent_window()
        # One model worker per GPU, each on its own; without GPU, as many as the CPU threads were split for.
        self.devices: list[str] = gpu_devices()
        self.workers = len(self.devices) or concurrent_tiles()
        self.function: TileFunction = self._trace()
        self.output_bands: list[int] = self._probe_output_bands()
        self.scratch: ScratchRasters | None = None

    def close(self) -> None:
        """Remove the temporary files written for pyotb sources (the plan cannot serve afterwards)."""
        if self.scratch is not None:
            self.scratch.close()
            self.scratch = None

    def __enter__(self) -> ServingPlan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- setup
    @property
    def has_background(self) -> bool:
        """Whether some output pixels may get BACKGROUND (nodata input or a MASK): the outputs then have a nodata."""
        return self.uses_nodata or self.mask is not None

    def _extent_window(self) -> Window | None:
        """The window of the output grid covering EXTENT (``None`` without EXTENT).

        Raises:
            InputError: EXTENT misses the output grid.
        """
        if not self.config.extent:
            return None
        grid = self.geometry.window
        window = intersection(from_bounds(self.geotransform, self.config.extent), grid)
        if window is None or window.width <= 0 or window.height <= 0:
            x0, dx, _, y0, _, dy = self.geotransform
            covered = [x0, y0 + dy * grid.height, x0 + dx * grid.width, y0]
            raise InputError(f"the extent {[float(f'{v:.6g}') for v in self.config.extent]} (xmin, ymin, xmax, ymax) "
                             f"does not overlap the output grid, which covers {[float(f'{v:.6g}') for v in covered]}"
                             " in the CRS of the first source. Give an extent inside it (in that CRS).", "EXTENT")
        return window

    @property
    def batch(self) -> int:
        """Model batch per tile: 1 tile, or one patch per output pixel."""
        return 1 if self.fully_convolutional else self.tile_size[0] * self.tile_size[1]

    @property
    def classes_dtype(self) -> type[np.unsignedinteger[Any]]:
        """Type of the class map: uint8 below 255 classes (255 is its nodata), else uint16."""
        return class_map_dtype(self.output_bands[0])

    @property
    def regular_tile(self) -> Window:
        """The regular tile shape at the origin."""
        return Window(0, 0, self.tile_size[0], self.tile_size[1])

    def input_shape(self, index: int) -> tuple[int, ...]:
        """Shape of the model input of source ``index`` for one tile."""
        source = self.sources[index]
        if self.fully_convolutional:
            window = self.geometry.input_window(index, self.regular_tile)
            return (1, window.height, window.width, source.bands)
        return (self.batch, source.receptive_field[1], source.receptive_field[0], source.bands)

    def _trace(self) -> TileFunction:
        specs = [(s.placeholder, self.input_shape(i), s.dtype) for i, s in enumerate(self.sources)]
        return self.model.tile_function(specs, self.constants, self.output_names)

    def _probe_output_bands(self) -> list[int]:
        """Run one tile of zeros: check the output shapes against the geometry, count bands."""
        arrays = [np.zeros(self.input_shape(i), dtype=s.dtype) for i, s in enumerate(self.sources)]
        try:
            outputs = self.function(*arrays)
        except Exception as exc:  # TensorFlow's errors are many; the message says what failed
            shapes = ", ".join(f"{s.placeholder} {list(self.input_shape(i))}" for i, s in enumerate(self.sources))
            raise ModelError(f"the model fails on tiles of {shapes}: {_first_line(exc)}. Check RFIELDS, EFIELD, "
                             "TILE_SIZE and the sources' bands.", "MODEL") from exc
        bands = []
        width, height = self.tile_size
        for name, array in zip(self.output_names, outputs, strict=True):
            if self.fully_convolutional:
                ok = array.ndim in (3, 4) and array.shape[0] == 1 and array.shape[1:3] == (height, width)
                if not ok:
                    size = "x".join(str(v) for v in array.shape[2:0:-1]) if array.ndim >= 3 else str(array.shape)
                    window = self.geometry.input_window(0, self.regular_tile)
                    rf = "x".join(map(str, self.sources[0].receptive_field))
                    ef = "x".join(map(str, self.geometry.expression_field))
                    raise InputError(
                        f"the model output '{name}' has {size} pixels for an input of {window.width}x{window.height},"
                        f" but with receptive field {rf} and expression field {ef} it should have {width}x{height}. "
                        "Give the RFIELDS and EFIELD of this output (for a cropped output '<name>_cropN' computed "
                        "on an input of rf pixels, ef = rf - 2N).", "EFIELD")
            else:
                ok = array.shape[:1] == (self.batch,) and (array.ndim <= 2 or array.shape[1:3] == (1, 1))
                if not ok:
                    raise InputError(f"in patch-based mode the model must return one pixel per patch, but '{name}' "
                                     f"has shape {list(array.shape[1:])} per patch. Use FULLYCONV=true, or an output "
                                     "of one pixel per patch.", "FULLYCONV")
            if array.ndim == 4:
                bands.append(int(array.shape[3]))
            elif array.ndim == 2 and not self.fully_convolutional:
                bands.append(int(array.shape[1]))  # one value per class for each patch
            else:
                bands.append(1)
        return bands

    def region(self, window: Window | None) -> Window:
        """``window`` clipped to the output grid and to EXTENT (the whole grid or EXTENT for ``None``).

        Raises:
            InputError: the window is outside the grid, or outside EXTENT (parameter ``REGION``).
        """
        grid = self.geometry.window if self.extent_window is None else self.extent_window
        if window is None:
            return grid
        region = intersection(window, grid)
        if region is None:
            raise InputError(f"the region {window} is outside the output grid "
                             f"({grid.width}x{grid.height}).", "REGION")
        return region

    def tiles(self, region: Window) -> list[Window]:
        """The tiles of the whole grid's tiling that cover ``region``.

        They are the very tiles a run over the whole grid computes, at the same places,
        so any region (an OTB ``box``, a Dask task) gets the whole run's pixels bit for
        bit: a tile elsewhere would give the same values only up to rounding. The writer
        keeps the part of each tile inside ``region``.
        """
        tile_x, tile_y = self.tile_size
        left, top = region.col_off - region.col_off % tile_x, region.row_off - region.row_off % tile_y
        width, height = region.col_off + region.width - left, region.row_off + region.height - top
        return [tile.translate(left, top) for tile in tile_grid(width, height, tile_x, tile_y)]

    def provenance(self) -> dict[str, str]:
        """Metadata items written into every output: the model, outputs, inputs and fields."""
        return {
            "otbtf_model": str(self.model.folder),
            "otbtf_outputs": ";".join(self.output_names),
            "otbtf_placeholders": ";".join(s.placeholder for s in self.sources),
            "otbtf_receptive_fields": ";".join("x".join(map(str, s.receptive_field)) for s in self.sources),
            "otbtf_expression_field": "x".join(map(str, self.geometry.expression_field)),
            "otbtf_spacing_scale": f"{float(self.geometry.spacing_scale):g}",
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _open_sources(config: ServeConfig) -> list[tuple[list[RasterInfo], Any]]:
    opened = []
    for number, source in enumerate(config.sources, start=1):
        infos = [raster_info(file_path(path, "SOURCES"), "SOURCES") for path in source.paths]
        first = infos[0]
        for info in infos:
            _, dx, rx, _, ry, dy = info.geotransform
            if rx or ry or dx <= 0 or dy >= 0:
                raise InputError(f"source {number} ('{info.path}') is rotated or not north-up (geotransform "
                                 f"{list(info.geotransform)}). Warp it to a north-up grid (gdalwarp).", "SOURCES")
            if (info.width, info.height) != (first.width, first.height) or not np.allclose(
                    info.geotransform, first.geotransform, rtol=0, atol=1e-6 * abs(dx)):
                raise InputError(f"the rasters of source {number} do not share one grid: '{first.path}' is "
                                 f"{first.width}x{first.height} at {list(first.geotransform)}, '{info.path}' is "
                                 f"{info.width}x{info.height} at {list(info.geotransform)}.", "SOURCES")
        opened.append((infos, source))
    reference = opened[0][0][0]
    for infos, _ in opened[1:]:
        for info in infos:
            if not same_crs(reference.crs_wkt, info.crs_wkt):
                raise InputError(f"'{info.path}' is not in the CRS of '{reference.path}'. Reproject the sources to "
                                 "one CRS (gdalwarp -t_srs ...).", "SOURCES")
    return opened


def _assign_placeholders(config: ServeConfig, model: ServingModel, constants: set[str]) -> list[str]:
    # Sources go to image inputs ([batch, rows, cols, bands]) first, in the model's order.
    image_inputs = sorted((name for name in model.input_names() if name not in constants),
                          key=lambda name: len(model.inputs[name].shape) != 4)
    available = ", ".join(info.describe() for name, info in model.inputs.items() if name not in constants)
    given = [source.placeholder for source in config.sources]
    for name in given:
        if name and name not in model.inputs:
            raise InputError(f"the model has no input '{name}'. Its inputs are: {available}.", "PLACEHOLDERS")
        if name and name in constants:
            raise InputError(f"'{name}' is given both as a source placeholder and in USER_PLACEHOLDERS.",
                             "PLACEHOLDERS")
    if len(set(filter(None, given))) != len(list(filter(None, given))):
        raise InputError(f"two sources feed the same model input ({', '.join(given)}).", "PLACEHOLDERS")
    remaining = [name for name in image_inputs if name not in given]
    placeholders = []
    for name in given:
        if name:
            placeholders.append(name)
        elif remaining:
            placeholders.append(remaining.pop(0))
        else:
            raise InputError(f"{len(config.sources)} sources were given but the model takes {len(image_inputs)} "
                             f"image input(s): {available}.", "SOURCES")
    if remaining:
        missing = ", ".join(model.inputs[name].describe() for name in remaining)
        raise InputError(f"the model input(s) {missing} are not fed: add a source for each (SOURCES and "
                         "PLACEHOLDERS), or give a value in USER_PLACEHOLDERS (name=value).", "SOURCES")
    return placeholders


def _output_names(config: ServeConfig, model: ServingModel) -> list[str]:
    available = ", ".join(sorted(model.outputs))
    names = [n for n in config.output_names if n]
    if not names:
        default = model.metadata.default_output()
        if default and default in model.outputs:
            names = [default]
        elif len(model.outputs) == 1:
            names = list(model.outputs)
        else:
            raise InputError(f"choose the model output(s) to write. Available outputs: {available}.", "OUTPUT_NAMES")
    for name in names:
        if name not in model.outputs:
            raise InputError(f"'{name}' is not an output of the model's signature. Available outputs: {available}.",
                             "OUTPUT_NAMES")
    return names


def _check_input(number: int, info: TensorInfo, bands: int, model: ServingModel) -> None:
    if len(info.shape) != 4:
        raise InputError(f"the model input {info.describe()} fed by source {number} is not an image "
                         "[batch, rows, cols, bands]. Give it in USER_PLACEHOLDERS or feed another input.",
                         "PLACEHOLDERS")
    if np.dtype(info.dtype).kind not in "biuf":
        raise ModelError(f"the model input {info.describe()} does not take numbers.", "MODEL")
    expected = info.channels or model.metadata.inputs.get(info.name, {}).get("bands")
    if expected is not None and int(expected) != bands:
        raise InputError(f"source {number} has {bands} band(s) but the model input '{info.name}' takes "
                         f"{expected}. Give a raster with {expected} bands (or several rasters whose bands add up).",
                         "SOURCES")


def _receptive_field(config: ServeConfig, index: int, info: TensorInfo, model: ServingModel,
                     output_name: str) -> tuple[int, int]:
    given = config.sources[index].receptive_field_xy
    if given is not None:
        return given
    from_json = model.metadata.receptive_field(info.name, len(config.sources), output_name)
    if from_json is not None:
        return from_json
    height, width = info.spatial_shape
    if height is not None and width is not None:
        return (width, height)
    raise InputError(f"the receptive field of source {index + 1} (model input '{info.name}') is unknown: the model "
                     "has no otbtf_model.json and a dynamic input size. Give RFIELDS (e.g. 64).", "RFIELDS")


def _expression_field(config: ServeConfig, model: ServingModel, output_name: str, placeholders: list[str],
                      fields: list[tuple[int, int]], bands: list[int], constants: dict[str, npt.NDArray[Any]],
                      dtypes: list[str]) -> tuple[int, int]:
    given = config.expression_field_xy
    if not config.fully_convolutional:
        if given is not None and given != (1, 1):
            raise InputError(f"patch-based mode (FULLYCONV=false) computes one output pixel per patch: EFIELD must "
                             f"be 1, not {'x'.join(map(str, given))}.", "EFIELD")
        return (1, 1)
    if given is not None:
        return given
    from_json = model.metadata.expression_field(output_name)
    if from_json is not None:
        return from_json
    # Probe: the output size of the model on inputs of the receptive field is its expression field.
    inputs: dict[str, npt.NDArray[Any]] = {
        name: np.zeros((1, rf[1], rf[0], count), dtype=dtype)
        for name, rf, count, dtype in zip(placeholders, fields, bands, dtypes, strict=True)}
    try:
        result = model.run_once({**inputs, **constants})[output_name]
    except Exception as exc:  # any failure means the receptive field does not suit the model
        raise InputError(f"the model fails on inputs of its receptive field ({_first_line(exc)}). Check RFIELDS, "
                         "or give EFIELD.", "RFIELDS") from exc
    if result.ndim not in (3, 4) or min(result.shape[1:3]) < 1:
        raise InputError(f"the output '{output_name}' (shape {list(result.shape)}) is not an image: serve it in "
                         "patch-based mode (FULLYCONV=false).", "OUTPUT_NAMES")
    return (int(result.shape[2]), int(result.shape[1]))


def _check_geometry(config: ServeConfig, fields: list[tuple[int, int]], geometry: ServingGeometry) -> None:
    scale = geometry.spacing_scale
    ef = geometry.expression_field
    for index, rf in enumerate(fields):
        source = geometry.sources[index]
        for axis, grid, size in (("x", source.x, rf[0]), ("y", source.y, rf[1])):
            dim = 0 if axis == "x" else 1
            pad = geometry.padding(index)[dim]
            if pad < 0:
                need = size - pad
                raise InputError(
                    f"the receptive field of source {index + 1} ({size} pixels along {axis}) cannot cover the "
                    f"expression field: it needs at least 1 + (ef - 1) x spcscale x spacing ratio = 1 + "
                    f"({ef[dim]} - 1) x {float(scale):g} x {float(grid.scale):g} = {need} pixels (receptive field "
                    f"{'x'.join(map(str, rf))}, expression field {'x'.join(map(str, ef))}, spcscale {float(scale):g}, "
                    f"first source pixel size / this source's = {float(grid.scale):g}). Fix RFIELDS, EFIELD or "
                    "SPCSCALE.", "RFIELDS")
            footprint = footprint_length(ef[dim], scale, grid.scale)
            if config.fully_convolutional and footprint.denominator != 1:
                raise InputError(
                    f"{ef[dim]} output pixels (the expression field) cover "
                    f"{float(footprint):g} pixels of source {index + 1} along "
                    f"{axis}: tiles must cover whole source pixels. Choose SPCSCALE or EFIELD so that "
                    "EFIELD x SPCSCALE x (first source pixel size / source pixel size) is an integer.", "SPCSCALE")
    for dim, axis, size in ((0, "x", geometry.width), (1, "y", geometry.height)):
        if size > 0:
            continue
        grids = [s.x if dim == 0 else s.y for s in geometry.sources]
        for number, (grid, rf) in enumerate(zip(grids, fields, strict=True), start=1):
            if grid.size < rf[dim]:
                raise InputError(f"source {number} is {grid.size} pixels along {axis}, smaller than its receptive "
                                 f"field {rf[dim]}. Give a larger raster (or a smaller RFIELDS).", "SOURCES")
        start, end = common_extent(grids, [rf[dim] for rf in fields])
        if end <= start:
            raise InputError("the sources do not overlap (once each is shrunk by its receptive field "
                             f"along {axis}). Give sources that cover a common area larger than the receptive field.",
                             "SOURCES")
        raise InputError(f"the sources are too small along {axis}: once shrunk by the receptive field they leave "
                         f"{float((end - start) / geometry.spacing_scale):g} output pixels, less than the expression "
                         f"field {ef[dim]}.", "SOURCES")


def _tile_size(config: ServeConfig, geometry: ServingGeometry, sources: list[SourcePlan],
               inputs: list[TensorInfo], blocks: tuple[int, int], reporter: Reporter) -> tuple[int, int]:
    ef = geometry.expression_field
    scale = geometry.spacing_scale
    sizes = []
    for dim, length in ((0, geometry.width), (1, geometry.height)):
        fixed = None
        if config.fully_convolutional:
            for index, info in enumerate(inputs):
                static = info.spatial_shape[1 - dim]
                if static is None:
                    continue
                pad = geometry.padding(index)[dim]
                grid = geometry.sources[index].x if dim == 0 else geometry.sources[index].y
                tile = Fraction(static - pad) / (scale * grid.scale)
                if tile.denominator != 1 or tile <= 0 or int(tile) % ef[dim]:
                    raise InputError(f"the model input '{info.name}' has a fixed size {static} along "
                                     f"{'xy'[dim]}, which no tile of whole expression fields ({ef[dim]}) matches. "
                                     "Check RFIELDS and EFIELD.", "TILE_SIZE")
                fixed = int(tile)
        if fixed is not None:
            if config.tile_size and round_up(config.tile_size, ef[dim]) != fixed:
                reporter.warning(f"the model's input size is fixed: tiles are {fixed} output pixels along "
                                 f"{'xy'[dim]}, not TILE_SIZE {config.tile_size}.")
            sizes.append(fixed)
        elif not config.fully_convolutional:
            if config.tile_size:
                sizes.append(min(config.tile_size, length))
            else:
                patch_bytes = sum(s.receptive_field[0] * s.receptive_field[1] * s.bands * np.dtype(s.dtype).itemsize
                                  for s in sources)
                side = max(1, math.isqrt(max(1, PATCH_TILE_BYTES // patch_bytes)))
                sizes.append(min(side, length))
        elif config.tile_size:  # no bigger than the grid (a multiple of ef): larger tiles would only be padding
            sizes.append(min(round_up(config.tile_size, ef[dim]), max(length, ef[dim])))
        else:
            inputs_scale = [(scale * (s.x.scale if dim == 0 else s.y.scale), geometry.padding(i)[dim])
                            for i, s in enumerate(geometry.sources)]
            sizes.append(auto_tile_size(length, ef[dim], inputs_scale, MAX_INPUT_TILE, blocks[dim]))
    return (sizes[0], sizes[1])


def prepare(config: ServeConfig, reporter: Reporter | None = None) -> ServingPlan:
    """Resolve ``config`` against its rasters and model, and trace the model for the tiles.

    Sources given as pyotb objects are written to temporary files beside ``config.output``
    first (beside the class map when only it is written); close the plan (:meth:`ServingPlan.close`) to remove them.

    Raises:
        InputError: a setting does not fit the rasters or the model (the message names it).
        ModelError: the model is not a usable SavedModel.
        RasterIOError: a source cannot be read or the output folder is not writable.
    """
    reporter = reporter or NullReporter()
    if config.output:
        ensure_writable_parent(Path(config.output), "OUTPUT")
    if config.output_classes:
        ensure_writable_parent(Path(config.output_classes), "OUTPUT_CLASSES")
    scratch = ScratchRasters(Path(config.output or config.output_classes).resolve().parent, reporter)
    try:
        files = dataclasses.replace(config, sources=tuple(
            dataclasses.replace(source, paths=scratch.paths(source.paths, "SOURCES")) for source in config.sources))
        plan = _prepare_files(files, reporter)
    except BaseException:
        scratch.close()
        raise
    plan.scratch = scratch
    return plan


def _prepare_files(config: ServeConfig, reporter: Reporter) -> ServingPlan:
    """:func:`prepare` once every source is a file."""
    opened = _open_sources(config)
    model = ServingModel(config.model)
    user_values = parse_user_placeholders(config.user_placeholders)
    for name in user_values:
        if name not in model.inputs:
            available = ", ".join(info.describe() for info in model.inputs.values())
            raise InputError(f"the model has no input '{name}'. Its inputs are: {available}.", "USER_PLACEHOLDERS")
    placeholders = _assign_placeholders(config, model, set(user_values))
    output_names = _output_names(config, model)
    inputs = [model.inputs[name] for name in placeholders]
    bands = [sum(info.bands for info in infos) for infos, _ in opened]
    for number, (info, count) in enumerate(zip(inputs, bands, strict=True), start=1):
        _check_input(number, info, count, model)
    fields = [_receptive_field(config, i, info, model, output_names[0]) for i, info in enumerate(inputs)]
    batch = 1
    constants_probe = {name: parse_constant(value, model.inputs[name], batch) for name, value in user_values.items()}
    ef = _expression_field(config, model, output_names[0], placeholders, fields, bands, constants_probe,
                           [info.dtype for info in inputs])
    scale = rational(config.spacing_scale)
    if scale is None:
        raise InputError(f"the spacing scale {config.spacing_scale} is not a simple fraction (e.g. 2, 0.5, 1/3).",
                         "SPCSCALE")
    reference = opened[0][0][0]
    geometries = []
    for number, ((infos, _), rf) in enumerate(zip(opened, fields, strict=True), start=1):
        raster = infos[0]
        try:
            grid_x, grid_y = axis_grids(reference.geotransform, raster.geotransform, raster.width, raster.height)
        except ValueError as exc:
            raise InputError(f"source {number} ('{raster.path}'): {exc}. Resample it to a pixel size that divides or "
                             "is a multiple of the first source's.", "SOURCES") from exc
        geometries.append(SourceGeometry(grid_x, grid_y, rf))
    geometry = ServingGeometry.build(geometries, ef, scale)
    _check_geometry(config, fields, geometry)
    sources = []
    for (infos, source), placeholder, rf, info in zip(opened, placeholders, fields, inputs, strict=True):
        nodata = None
        if source.use_nodata:
            nodata = source.nodata if source.nodata is not None else infos[0].common_nodata
        sources.append(SourcePlan(tuple(i.path for i in infos), tuple(i.bands for i in infos), placeholder, rf, nodata,
                                  info.dtype, infos[0]))
    if any(s.nodata is not None for s in sources) or config.mask:
        _check_background(config)
    options = merged_creation_options(config.creation_options)
    blocks = block_size(options)
    tile_size = _tile_size(config, geometry, sources, inputs, blocks, reporter)
    batch = 1 if config.fully_convolutional else tile_size[0] * tile_size[1]
    constants = {name: parse_constant(value, model.inputs[name], batch) for name, value in user_values.items()}
    reporter.info(f"output grid {geometry.width}x{geometry.height}, tiles of {tile_size[0]}x{tile_size[1]} output "
                  f"pixels, receptive field(s) {', '.join('x'.join(map(str, f)) for f in fields)}, expression field "
                  f"{'x'.join(map(str, ef))}, output(s) {', '.join(output_names)}")
    return ServingPlan(config, model, sources, output_names, geometry, tile_size, constants, options, blocks)


def _check_background(config: ServeConfig) -> None:
    dtype = stored_type(config.output_type)
    if dtype.kind in "iu" and config.output_type == dtype.name:  # a scaled type has its own nodata
        limits = np.iinfo(dtype)
        if not (limits.min <= config.background <= limits.max and float(config.background).is_integer()):
            raise InputError(f"BACKGROUND {config.background:g} cannot be stored as {dtype.name}. Choose a value in "
                             f"[{limits.min}, {limits.max}] or another OUTPUT_TYPE.", "BACKGROUND")


def check_class_map(plan: ServingPlan) -> None:
    """Check that the first output can give a class map (one band per class).

    Raises:
        InputError: the first output has one band (parameter ``OUTPUT_CLASSES``).
    """
    if plan.output_bands[0] < 2:
        raise InputError(f"the class map is the argmax of the first output's bands, but '{plan.output_names[0]}' has "
                         "one band. Choose an output with one band per class (e.g. softmax scores).",
                         "OUTPUT_CLASSES")
