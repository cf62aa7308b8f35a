"""OTBTF-compatible entry points: ``TensorflowModelServe`` and ``PatchesExtraction`` with OTBTF's keys.

People who run OTBTF have parameter dictionaries (pyotb, ``otbApplication``) and
``otbcli_*`` command lines. The same ones run on our engine, changed only in the program
or import name::

    from otbtf_qgis.core.compat.otb import TensorflowModelServe
    TensorflowModelServe({"source1.il": ["xs.tif"], "source1.rfieldx": 64, "source1.rfieldy": 64,
                          "source1.placeholder": "input_xs", "model.dir": "model", "model.fullyconv": True,
                          "output.names": ["predictions_crop16"], "output.efieldx": 32, "output.efieldy": 32,
                          "out": "map.tif?&gdal:co:COMPRESS=DEFLATE"})

    python -m otbtf_qgis.core.compat.otbcli TensorflowModelServe -source1.il xs.tif -source1.rfieldx 64 ...

The keys map onto :class:`~otbtf_qgis.core.jobs.configs.modelserve.ServeConfig` and
:func:`~otbtf_qgis.core.data.patchesextraction.extract_patches`; any number of sources
``source1`` … ``sourceN`` is taken from the keys (no ``OTB_TF_NSOURCES`` needed). Where
OTBTF has a default, it is OTBTF's: ``model.fullyconv`` off, no nodata unless
``sourceN.nodata`` is given, receptive and expression fields of 1 along an axis whose
``x``/``y`` companion is given, outputs written as ``float`` (``float32``; labels of
PatchesExtraction ``uint8``) unless a pixel type follows the file name, as ``otbcli``
allows (``-out map.tif uint8``). Two defaults are ours, and only where OTBTF would have
to be told: without any ``rfield``/``efield`` keys, the fields come from the model
(``otbtf_model.json``, then its signature), and without ``optim.tilesize*`` the tile size
is chosen automatically (OTBTF's 16 is about 20× slower); the pixels never depend on
the tile size, so ``optim.*`` only changes speed and memory (tiles are square, of the
larger size given). Values may be given as in pyotb: numbers, booleans, lists, a single
path for an image list, ``_`` for ``.`` in keys, and pyotb objects in ``sourceN.il``.

OTB extended file names on output files: ``&gdal:co:KEY=VALUE`` becomes a GeoTIFF
creation option (replacing our defaults key by key); ``&box=x:y:w:h`` (on
TensorflowModelServe's ``out``) writes only that region of the output, in output
pixels; ``&writegeom=`` and ``&streaming:type/sizemode/sizevalue=`` are accepted and
have no effect (no ``.geom`` sidecar is ever written; our engine streams by tiles
anyway). Any other option, and any key not listed by ``-help``, is refused with an error
naming it and listing what is supported.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from osgeo import gdal

from otbtf_qgis.core.compat.filenames import OutputFile, parse_output
from otbtf_qgis.core.compat.keys import (
    EXTRACTION,
    EXTRACTION_PARAMETER_KEYS,
    OTBTF_DEFAULT_TILE,
    SERVE,
    SERVE_PARAMETER_KEYS,
    pair,
    read_parameters,
    renamed,
)
from otbtf_qgis.core.data.patchesextraction import SourceSpec, default_source_names, extract_patches
from otbtf_qgis.core.errors import CancelledError, InputError, OtbtfError, RasterIOError
from otbtf_qgis.core.io.pyotb_inputs import ScratchRasters
from otbtf_qgis.core.io.raster import gdal_array_type, numpy_to_gdal_type, open_raster
from otbtf_qgis.core.io.windows import Window
from otbtf_qgis.core.jobs.configs.modelserve import ServeConfig, SourceConfig
from otbtf_qgis.core.jobs.outputs import ensure_writable_parent, partial_name
from otbtf_qgis.core.progress import NullReporter, Reporter


# -------------------------------------------------------------------- TensorflowModelServe
@dataclass(frozen=True)
class ServeRequest:
    """A TensorflowModelServe call translated: the serving config and the region to write.

    Attributes:
        config: The serving configuration (our engine's).
        box: The region of the output grid to write (``&box=``), or ``None`` for all of it.
    """

    config: ServeConfig
    box: Window | None


def serve_request(params: Mapping[str, Any]) -> ServeRequest:
    """Translate TensorflowModelServe parameters into a :class:`ServeRequest` (nothing is run).

    Raises:
        InputError: an unknown key, a bad value or a missing required key (named as in OTBTF).
    """
    parameters = read_parameters(SERVE, params)
    values = parameters.values
    try:
        output = parse_output(values["out"], "out", allow_box=True)
        tags = values.get("model.tagsets", [])
        if any(tag != "serve" for tag in tags):
            raise InputError(f"only the 'serve' tag set of a SavedModel is loaded, not {' '.join(tags)}.",
                             "model.tagsets")
        tile_size = 0
        sizes = [values.get("optim.tilesizex"), values.get("optim.tilesizey")]
        if not values.get("optim.disabletiling", False) and any(size is not None for size in sizes):
            tile_size = max(size if size is not None else OTBTF_DEFAULT_TILE for size in sizes)
        sources = tuple(
            SourceConfig(paths=tuple(source["il"]),
                         receptive_field=pair(source, "rfieldx", "rfieldy"),
                         placeholder=source.get("placeholder", ""),
                         nodata=source.get("nodata"),
                         use_nodata="nodata" in source)  # OTBTF ignores a raster's own nodata
            for source in parameters.sources)
        config = ServeConfig(
            sources=sources,
            model=values["model.dir"],
            output=output.path,
            output_names=tuple(values.get("output.names", ())),
            expression_field=pair(values, "output.efieldx", "output.efieldy"),
            fully_convolutional=values.get("model.fullyconv", False),
            spacing_scale=values.get("output.spcscale", 1.0),
            tile_size=tile_size,
            background=values.get("output.bv", 0.0),
            user_placeholders=tuple(values.get("model.userplaceholders", ())),
            output_type=output.pixel_type or "float32",  # type: ignore[arg-type]
            creation_options=output.creation_options,
        )
    except OtbtfError as exc:
        raise renamed(exc, SERVE_PARAMETER_KEYS, len(parameters.sources)) from exc
    return ServeRequest(config, output.box)


def TensorflowModelServe(params: Mapping[str, Any], reporter: Reporter | None = None) -> dict[str, Any]:  # noqa: N802
    """Run OTBTF's TensorflowModelServe with its parameter dictionary, on our serving engine.

    Args:
        params: OTBTF's keys (see the module docstring), e.g. ``{"source1.il": ["xs.tif"],
            "source1.rfieldx": 64, ..., "out": "map.tif?&gdal:co:COMPRESS=DEFLATE"}``.
            ``source<N>.il`` may hold pyotb objects.
        reporter: Progress and cancel.

    Returns:
        The serving summary (``output`` path, size, geotransform, tiles, timings).

    Raises:
        InputError, ModelError, RasterIOError: naming the OTBTF key at fault.
    """
    reporter = reporter or NullReporter()
    request = serve_request(params)
    try:
        if request.box is None:
            from otbtf_qgis.core.serving.modelserve import serve

            return serve(request.config, reporter)
        return _serve_box(request.config, request.box, reporter)
    except OtbtfError as exc:
        if isinstance(exc, CancelledError):
            raise
        raise renamed(exc, SERVE_PARAMETER_KEYS, len(request.config.sources)) from exc


def _serve_box(config: ServeConfig, box: Window, reporter: Reporter) -> dict[str, Any]:
    """Serve the region ``box`` of the output grid into ``config.output``."""
    from otbtf_qgis.core.serving.plan import prepare
    from otbtf_qgis.core.serving.stream import serve_plan

    with prepare(config, reporter.sub(0.0, 0.05)) as plan:
        grid = plan.geometry.window
        if box.col_off + box.width > grid.width or box.row_off + box.height > grid.height:
            raise InputError(f"box {box.col_off}:{box.row_off}:{box.width}:{box.height} leaves the output image "
                             f"({grid.width}x{grid.height} pixels).", "out")
        return serve_plan(plan, config.output, box, "", reporter.sub(0.05, 1.0))


def _publish(items: Sequence[tuple[Path, Path, str | None, Sequence[str]]], parameter: str) -> None:
    """Write each temporary raster to its destination (pixel type, creation options), then publish all.

    Each item is ``(source, destination, numpy pixel type or None, creation options)``.
    A source that needs no change is moved. Destinations are
    written under temporary names and renamed only once all are written.
    """
    written: list[tuple[Path, Path]] = []
    try:
        for source, destination, pixel_type, options in items:
            ensure_writable_parent(destination, parameter)
            temporary = partial_name(destination)
            if pixel_type is None and not options:
                shutil.move(source, temporary)
            else:
                dataset = gdal.Open(str(source))
                kwargs: dict[str, Any] = {"format": "GTiff", "creationOptions": list(options)}
                if pixel_type is not None:
                    kwargs["outputType"] = numpy_to_gdal_type(pixel_type)
                try:
                    result = gdal.Translate(str(temporary), dataset, **kwargs)
                except RuntimeError as exc:
                    raise RasterIOError(f"cannot write '{destination}': {exc}. Check the folder, the free space and "
                                        "the creation options.", parameter) from exc
                if result is None:
                    raise RasterIOError(f"cannot write '{destination}'.", parameter)
                result = dataset = None
            written.append((temporary, destination))
    except BaseException:
        for temporary, _ in written:
            temporary.unlink(missing_ok=True)
        raise
    for temporary, destination in written:
        os.replace(temporary, destination)


# ------------------------------------------------------------------------ PatchesExtraction
@dataclass(frozen=True)
class ExtractionSource:
    """One PatchesExtraction source: its images, patch size, nodata and output."""

    images: tuple[Any, ...]
    patch_size: tuple[int, int]
    nodata: float | None
    output: OutputFile


@dataclass(frozen=True)
class ExtractionRequest:
    """A PatchesExtraction call translated.

    Attributes:
        sources: The sources, in order.
        points: The point layer (``vec``).
        class_field: The class field (``field``), used when ``labels`` is set.
        labels: The class labels image (``outlabels``), or ``None``.
    """

    sources: tuple[ExtractionSource, ...]
    points: str
    class_field: str
    labels: OutputFile | None


def extraction_request(params: Mapping[str, Any]) -> ExtractionRequest:
    """Translate PatchesExtraction parameters into an :class:`ExtractionRequest` (nothing is run).

    Raises:
        InputError: an unknown key, a bad value or a missing required key (named as in OTBTF).
    """
    parameters = read_parameters(EXTRACTION, params)
    values = parameters.values
    sources = tuple(
        ExtractionSource(tuple(source["il"]), (source["patchsizex"], source["patchsizey"]), source.get("nodata"),
                         parse_output(source["out"], f"source{number}.out", allow_box=False))
        for number, source in enumerate(parameters.sources, start=1))
    labels = parse_output(values["outlabels"], "outlabels", allow_box=False) if "outlabels" in values else None
    class_field = values.get("field", "")
    if labels is not None and not class_field:
        raise InputError("outlabels needs the class field: give field.", "field")
    destinations = [s.output.path for s in sources] + ([labels.path] if labels else [])
    repeated = sorted({p for p in destinations if destinations.count(p) > 1})
    if repeated:
        raise InputError(f"two outputs are the same file ({', '.join(repeated)}).", "source1.out")
    return ExtractionRequest(sources, values["vec"], class_field if labels is not None else "", labels)


def PatchesExtraction(params: Mapping[str, Any], reporter: Reporter | None = None) -> dict[str, Any]:  # noqa: N802
    """Run OTBTF's PatchesExtraction with its parameter dictionary, on our extraction.

    Patches images are ``float32`` and labels ``uint8`` unless a pixel type follows the
    file name (as OTB's defaults); ``-source1.out patches.tif uint16`` keeps 16-bit data.
    Patch positions, acceptance and order follow :mod:`otbtf_qgis.core.data.patchesextraction`.

    Args:
        params: OTBTF's keys: ``source<N>.il``, ``source<N>.patchsizex/y``, ``source<N>.out``,
            ``source<N>.nodata``, ``vec``, ``field``, ``outlabels``.
        reporter: Progress and cancel.

    Returns:
        ``n_samples``, ``rejected`` (count per reason), ``class_mapping`` and ``files`` (per key).

    Raises:
        InputError, RasterIOError: naming the OTBTF key at fault.
    """
    reporter = reporter or NullReporter()
    request = extraction_request(params)
    count = len(request.sources)
    names = default_source_names(count)
    try:
        near = Path(request.sources[0].output.path).resolve().parent
        with ScratchRasters(near, reporter) as scratch:
            specs = []
            for number, (name, source) in enumerate(zip(names, request.sources, strict=True), start=1):
                path = _source_file(scratch, source.images, name, f"source{number}.il")
                bands = open_raster(path, f"source{number}.il").RasterCount
                specs.append(SourceSpec(name, path, source.patch_size, (source.nodata,) * bands))
            outputs = {name: scratch.new_file(f"{name}_patches.tif") for name in names}
            labels_file = scratch.new_file("labels.tif") if request.labels is not None else None
            result = extract_patches(specs, request.points, request.class_field, outputs, labels_file,
                                     reporter.sub(0.0, 0.9))
            items: list[tuple[Path, Path, str | None, Sequence[str]]] = []
            files: dict[str, str] = {}
            for number, (name, source) in enumerate(zip(names, request.sources, strict=True), start=1):
                items.append(_conversion(outputs[name], source.output, "float32"))
                files[f"source{number}.out"] = source.output.path
            if request.labels is not None and labels_file is not None:
                labels_type = request.labels.pixel_type or "uint8"
                _check_labels_fit(labels_file, labels_type)
                items.append(_conversion(labels_file, request.labels, "uint8"))
                files["outlabels"] = request.labels.path
            _publish(items, "source1.out")
    except OtbtfError as exc:
        if isinstance(exc, CancelledError):
            raise
        raise renamed(exc, EXTRACTION_PARAMETER_KEYS, count) from exc
    reporter.progress(1.0)
    reporter.info(result.summary())
    mapping = result.class_labels.mapping if result.class_labels is not None else {}
    return {"n_samples": result.n_samples, "rejected": result.rejected, "class_mapping": mapping,
            "point_ids": result.point_ids, "files": files}


def _conversion(source: Path, output: OutputFile, default_type: str
                ) -> tuple[Path, Path, str | None, Sequence[str]]:
    """The :func:`_publish` item of a temporary output: converted only when the type or options differ."""
    wanted = output.pixel_type or default_type
    dataset = gdal.Open(str(source))
    current = gdal_array_type(dataset.GetRasterBand(1).DataType).name
    dataset = None
    options = ("BIGTIFF=IF_SAFER", *output.creation_options) if output.creation_options else ()
    return (source, Path(output.path), None if wanted == current else wanted, options)


def _check_labels_fit(labels_file: Path, pixel_type: str) -> None:
    import numpy as np

    values = gdal.Open(str(labels_file)).ReadAsArray()
    dtype = np.dtype(pixel_type)
    if dtype.kind in "iu" and values.size:
        limits = np.iinfo(dtype)
        if values.min() < limits.min or values.max() > limits.max:
            raise InputError(f"class values {values.min()}..{values.max()} do not fit in {dtype.name}: give a wider "
                             "pixel type after the file name (e.g. outlabels labels.tif int32).", "outlabels")


def _source_file(scratch: ScratchRasters, images: tuple[Any, ...], name: str, key: str) -> str:
    """One raster file for a source: its image, or a VRT stacking the bands of its images in order."""
    paths = scratch.paths(images, key)
    if len(paths) == 1:
        return paths[0]
    datasets = [open_raster(path, key) for path in paths]
    first = datasets[0]
    for path, dataset in zip(paths, datasets, strict=True):
        if (dataset.RasterXSize, dataset.RasterYSize) != (first.RasterXSize, first.RasterYSize):
            raise InputError(f"the images of a source are stacked by band and must have the same size: "
                             f"'{paths[0]}' is {first.RasterXSize}x{first.RasterYSize}, '{path}' is "
                             f"{dataset.RasterXSize}x{dataset.RasterYSize}.", key)
    target = scratch.new_file(f"{name}_stack.vrt")
    vrt = gdal.GetDriverByName("VRT").Create(str(target), first.RasterXSize, first.RasterYSize, 0)
    vrt.SetGeoTransform(first.GetGeoTransform())
    vrt.SetProjection(first.GetProjection())
    for path, dataset in zip(paths, datasets, strict=True):
        for band_number in range(1, dataset.RasterCount + 1):
            band = dataset.GetRasterBand(band_number)
            vrt.AddBand(band.DataType)
            stacked = vrt.GetRasterBand(vrt.RasterCount)
            stacked.SetMetadataItem("source_0", (
                f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(os.path.abspath(path))}</SourceFilename>'
                f"<SourceBand>{band_number}</SourceBand></SimpleSource>"), "new_vrt_sources")
    vrt.FlushCache()
    vrt = None
    return str(target)


