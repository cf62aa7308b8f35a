"""SavedModels: load, inspect the serving signature, read ``otbtf_model.json``.

The one place that opens a SavedModel, for serving and for the receptive field analysis.
:func:`read_model_metadata` reads the JSON that training writes beside the SavedModel
(see ``docs/formats.md``) without TensorFlow. :class:`ServingModel` loads the SavedModel
(TensorFlow is imported only then), picks its signature (``serving_default``, or the only
one), describes it (input names, shapes and dtypes; output names) and builds
:class:`TileFunction`: the signature traced once for a fixed tile shape, with the user's
constant inputs bound.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from otbtf_qgis.core.errors import InputError, ModelError

METADATA_FILE = "otbtf_model.json"
SERVING_SIGNATURE = "serving_default"
#: Tiles computed at once when TensorFlow's threads are split by :func:`configure_threads`.
CONCURRENT_TILES = 2

Size = tuple[int, int]


def _size(value: Any) -> Size | None:
    if isinstance(value, int) and value > 0:
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) in (1, 2) and all(isinstance(v, int) and v > 0 for v in value):
        return (int(value[0]), int(value[-1]))
    return None


@dataclass(frozen=True)
class ModelMetadata:
    """What ``otbtf_model.json`` tells serving (every field optional).

    Attributes:
        inputs: Per model input: ``bands``, ``dtype``, ``patch_size``.
        outputs: Output names.
        class_output: The output holding class scores.
        class_names: Class names, by class index.
        class_colors: Optional ``[r, g, b]`` per class.
        cropped_outputs: Per cropped output: ``output``, ``crop``, ``receptive_field``, ``expression_field``.
        serving: ``output_name``, ``receptive_field``, ``expression_field`` (and, for models
            with several inputs, ``receptive_fields`` per input).
    """

    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    class_output: str = ""
    class_names: tuple[str, ...] = ()
    class_colors: tuple[tuple[int, int, int], ...] = ()
    cropped_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    serving: dict[str, Any] = field(default_factory=dict)

    def default_output(self) -> str:
        """The output serving should write by default ("" when unknown)."""
        return str(self.serving.get("output_name") or "")

    def receptive_field(self, input_name: str, n_inputs: int, output_name: str) -> Size | None:
        """The receptive field of ``input_name`` for ``output_name``, if the JSON gives it."""
        per_input = self.serving.get("receptive_fields")
        if isinstance(per_input, dict) and _size(per_input.get(input_name)):
            return _size(per_input.get(input_name))
        if n_inputs == 1:
            cropped = self.cropped_outputs.get(output_name, {})
            if _size(cropped.get("receptive_field")):
                return _size(cropped.get("receptive_field"))
            if _size(self.serving.get("receptive_field")):
                return _size(self.serving.get("receptive_field"))
        return _size(self.inputs.get(input_name, {}).get("patch_size"))

    def expression_field(self, output_name: str) -> Size | None:
        """The expression field of ``output_name``, if the JSON gives it."""
        cropped = self.cropped_outputs.get(output_name, {})
        if _size(cropped.get("expression_field")):
            return _size(cropped.get("expression_field"))
        if output_name == self.default_output():
            return _size(self.serving.get("expression_field"))
        return None


def read_model_metadata(folder: str | os.PathLike[str]) -> ModelMetadata:
    """Read ``otbtf_model.json`` beside a SavedModel; empty metadata when there is none.

    Raises:
        ModelError: when the file exists but is not valid JSON.
    """
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        return ModelMetadata()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"'{path}' is not valid JSON ({exc}). Fix or delete it.", "MODEL") from exc
    if not isinstance(data, dict):
        raise ModelError(f"'{path}' must hold a JSON object.", "MODEL")
    colors = tuple(tuple(int(c) for c in color[:3]) for color in data.get("class_colors") or []
                   if isinstance(color, (list, tuple)) and len(color) >= 3)
    return ModelMetadata(
        inputs={str(k): dict(v) for k, v in (data.get("inputs") or {}).items() if isinstance(v, dict)},
        outputs=tuple(str(v) for v in data.get("outputs") or []),
        class_output=str(data.get("class_output") or ""),
        class_names=tuple(str(v) for v in data.get("class_names") or []),
        class_colors=colors,  # type: ignore[arg-type]
        cropped_outputs={str(k): dict(v) for k, v in (data.get("cropped_outputs") or {}).items()
                         if isinstance(v, dict)},
        serving=dict(data.get("serving") or {}),
    )


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of the serving signature.

    Attributes:
        name: The signature key.
        shape: Dimensions, ``None`` where dynamic (the first is the batch).
        dtype: numpy dtype name (``"float32"``, ``"uint16"``, ``"bool"``, ``"object"`` for strings).
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def describe(self) -> str:
        """``name [?, ?, ?, 4] float32``."""
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} [{dims}] {self.dtype}"

    @property
    def channels(self) -> int | None:
        """The last dimension of an image input (``None`` when dynamic or not an image)."""
        return self.shape[-1] if len(self.shape) == 4 else None

    @property
    def spatial_shape(self) -> tuple[int | None, int | None]:
        """``(height, width)`` of an image input, ``None`` where dynamic."""
        if len(self.shape) == 4:
            return (self.shape[1], self.shape[2])
        return (None, None)


def is_saved_model(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` holds a SavedModel (``saved_model.pb`` or ``.pbtxt``)."""
    path = Path(folder)
    return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()


def parse_constant(text: str, info: TensorInfo, batch: int) -> npt.NDArray[Any]:
    """The array fed to a constant input (user placeholder) from its text value.

    Booleans accept true/false/1/0/yes/no; numbers are cast to the input's dtype. The
    shape is the input's, its batch dimension ``batch`` and other dynamic ones 1; a
    scalar input gets a scalar.

    Raises:
        InputError: when the text does not fit the input's dtype (parameter ``USER_PLACEHOLDERS``).
    """
    dtype = np.dtype(info.dtype)
    value: Any
    try:
        if dtype == np.bool_:
            lowered = text.strip().lower()
            if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(text)
            value = lowered in {"true", "1", "yes"}
        elif dtype.kind in "iu":
            number = float(text)
            if not number.is_integer():
                raise ValueError(text)
            value = int(number)
        elif dtype.kind == "f":
            value = float(text)
        else:
            value = text
    except ValueError as exc:
        raise InputError(f"'{info.name}={text}' does not fit the model input {info.describe()}.",
                         "USER_PLACEHOLDERS") from exc
    shape = tuple(batch if (i == 0 and d is None) else (1 if d is None else d) for i, d in enumerate(info.shape))
    return np.full(shape, value, dtype=dtype if dtype.kind != "O" else object)


def configure_threads(tiles: int = CONCURRENT_TILES) -> None:
    """Split TensorFlow's threads so that ``tiles`` tiles are computed at once, each on its share of the cores.

    One big tile on all cores makes TensorFlow's parallel operations wait for each other
    (and for any other busy thread); concurrent tiles on one core each waste nothing and
    leave room for reading and writing. TensorFlow reads these settings once, when it
    starts: call this before anything runs a model (the ``modelserve`` worker does); it
    does nothing if TensorFlow has started already, or when a GPU computes the model.
    """
    import tensorflow as tf

    cores = os.cpu_count() or 1
    if share_gpus():
        return
    if tiles < 2 or cores < 2:
        return
    with contextlib.suppress(RuntimeError):  # TensorFlow has started: keep its settings
        tf.config.threading.set_intra_op_parallelism_threads(max(1, cores // tiles))
        tf.config.threading.set_inter_op_parallelism_threads(tiles)


def share_gpus() -> bool:
    """Let TensorFlow take GPU memory as it needs it rather than all at start; whether GPUs are seen.

    By default TensorFlow reserves nearly all the memory of every GPU it sees, so a second
    process on the same machine (Dask workers of ``local:N``) could not start a model.
    Does nothing to GPUs TensorFlow has started on already.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.experimental.set_memory_growth(gpu, True)
    return bool(gpus)


def concurrent_tiles() -> int:
    """How many tiles to compute at once: :data:`CONCURRENT_TILES` if :func:`configure_threads` applied, else 1."""
    import tensorflow as tf

    cores = os.cpu_count() or 1
    per_tile = tf.config.threading.get_intra_op_parallelism_threads()
    if per_tile and cores >= 2 and per_tile * CONCURRENT_TILES <= cores:
        return CONCURRENT_TILES
    return 1


def gpu_devices() -> list[str]:
    """The GPUs TensorFlow computes on, as device names (``/device:GPU:0``, ...); empty without a GPU."""
    import tensorflow as tf

    return [device.name for device in tf.config.list_logical_devices("GPU")]


@contextlib.contextmanager
def on_device(device: str | None) -> Iterator[None]:
    """Run the models called in the block (in this thread) on ``device``; TensorFlow's choice for ``None``."""
    if device is None:
        yield
        return
    import tensorflow as tf

    with tf.device(device):
        yield


class TileFunction:
    """The model traced once for fixed input shapes, with constant inputs bound.

    Call it with one array per image input (in the order given at construction); it
    returns one array per output name. Built by :meth:`ServingModel.tile_function`.
    """

    def __init__(self, concrete: Any, output_names: Sequence[str]) -> None:
        self._concrete = concrete
        self.output_names = tuple(output_names)

    def __call__(self, *arrays: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
        """Run the model on ``arrays``; return the outputs as numpy arrays."""
        outputs = self._concrete(*arrays)
        return [tensor.numpy() for tensor in outputs]


class ServingModel:
    """A SavedModel and its serving signature.

    The signature is ``serving_default``, or the only signature of a SavedModel that has
    one under another name. ``otbtf_model.json`` beside it, if any, is read into
    :attr:`metadata`.

    Args:
        folder: The SavedModel folder.
        parameter: Parameter named in errors.

    Raises:
        ModelError: the folder is missing, is not a SavedModel, fails to load, has no
            signature to serve, or its ``otbtf_model.json`` is not valid JSON.
    """

    def __init__(self, folder: str | os.PathLike[str], parameter: str = "MODEL") -> None:
        self.folder = Path(folder)
        self.parameter = parameter
        if not self.folder.exists():
            raise ModelError(f"the model folder '{self.folder}' does not exist. Give a SavedModel folder.", parameter)
        if not self.folder.is_dir() or not is_saved_model(self.folder):
            raise ModelError(f"'{self.folder}' is not a SavedModel (no saved_model.pb in it). Give the folder "
                             "written by Train model, model.export() or tf.saved_model.save().", parameter)
        self.metadata = read_model_metadata(self.folder)
        import tensorflow as tf

        try:
            self._loaded = tf.saved_model.load(str(self.folder))
        except Exception as exc:  # TensorFlow raises many types; the message is what matters
            raise ModelError(f"TensorFlow cannot load the SavedModel '{self.folder}': {exc}", parameter) from exc
        signatures = dict(self._loaded.signatures)
        if SERVING_SIGNATURE in signatures:
            self.signature_name = SERVING_SIGNATURE
        elif len(signatures) == 1:
            self.signature_name = next(iter(signatures))
        else:
            listed = ", ".join(sorted(signatures)) or "none"
            raise ModelError(f"the SavedModel '{self.folder}' has no '{SERVING_SIGNATURE}' signature (signatures: "
                             f"{listed}). Export it with model.export() or with a serving signature.", parameter)
        self._signature = signatures[self.signature_name]
        _, kwargs = self._signature.structured_input_signature
        self.inputs = {name: _tensor_info(name, spec) for name, spec in kwargs.items()}
        outputs = self._signature.structured_outputs
        if not isinstance(outputs, Mapping):
            raise ModelError(f"the signature '{self.signature_name}' of '{self.folder}' does not name its outputs.",
                             parameter)
        self.outputs = {name: _tensor_info(name, spec) for name, spec in outputs.items()}

    @property
    def signature(self) -> Any:
        """The selected signature: a concrete function taking the inputs by name, returning a dict of outputs."""
        return self._signature

    def input_names(self) -> list[str]:
        """Signature input names, in the order of ``otbtf_model.json`` when it lists them."""
        ordered = [name for name in self.metadata.inputs if name in self.inputs]
        return ordered + [name for name in self.inputs if name not in ordered]

    def tile_function(self, input_specs: Sequence[tuple[str, tuple[int, ...], str]],
                      constants: Mapping[str, npt.NDArray[Any]], output_names: Sequence[str]) -> TileFunction:
        """Trace the signature once for the given input shapes.

        Args:
            input_specs: ``(name, shape, dtype)`` of each image input, in call order.
            constants: Arrays fed to the other inputs (user placeholders) on every call.
            output_names: The outputs to return, in order.
        """
        import tensorflow as tf

        names = [name for name, _, _ in input_specs]
        specs = [tf.TensorSpec(shape, tf.as_dtype(dtype), name=name) for name, shape, dtype in input_specs]
        bound = {name: tf.constant(value) for name, value in constants.items()}
        signature = self._signature
        wanted = list(output_names)

        def call(*tensors: Any) -> list[Any]:
            results = signature(**dict(zip(names, tensors, strict=True)), **bound)
            return [results[name] for name in wanted]

        concrete = tf.function(call, input_signature=specs).get_concrete_function()
        return TileFunction(concrete, wanted)

    def run_once(self, inputs: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Run the signature on ``inputs`` (all of them) without tracing; for probing."""
        results = self._signature(**{name: value for name, value in inputs.items()})
        return {name: tensor.numpy() for name, tensor in results.items()}


def _tensor_info(name: str, spec: Any) -> TensorInfo:
    shape = tuple(None if d is None else int(d) for d in spec.shape.as_list()) if spec.shape.rank is not None else ()
    dtype = spec.dtype
    numpy_name = "object" if dtype.name == "string" else np.dtype(dtype.as_numpy_dtype).name
    return TensorInfo(name, shape, numpy_name)
