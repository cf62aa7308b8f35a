"""The base class of every trainable model: OTBTF's ``ModelBase`` on Keras 3.

A model is written as in OTBTF: subclass :class:`ModelBase`, implement
``normalize_inputs`` (scale the raw inputs) and ``get_outputs`` (the network, returning
a dict of named outputs, e.g. ``{"predictions": softmax}``). ``ModelBase`` builds a Keras
functional model from them, once, at construction: the object *is* a ``keras.Model``
(compile, fit, evaluate, summary, export work as usual).

Keras 3 refuses TensorFlow operations on its symbolic tensors (``tf.cast(keras_input)``
raises), which breaks model code written for TensorFlow 2's Keras, such as OTBTF's
documentation. Importing this module registers a TensorFlow dispatcher that turns such
a call into a small layer (:class:`TensorFlowOpLayer`) which runs the operation on the
real tensors when the model runs. Layers created in ``get_outputs`` are created once, as
the functional model is built, and their weights are tracked by the model.

For inference, :meth:`ModelBase.postprocess_outputs` adds cropped copies of every
output, ``<name>_crop<N>`` for N in ``inference_cropping`` (what OTBTF's
TensorflowModelServe needs to avoid blocking artifacts), where ``<name>`` is the output's
name in the SavedModel: the name of its layer, unless that would be ambiguous (see
:attr:`ModelBase.output_names_by_key`). Those only exist in
:attr:`ModelBase.inference_model`, which :meth:`ModelBase.export` writes as a SavedModel:
training sees only the outputs of ``get_outputs`` (Keras 3 requires a target for every
output of a model it fits).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from keras import KerasTensor

from otbtf_qgis.core.errors import ModelError
from otbtf_qgis.core.models.receptive_field import crop_name

#: OTBTF's default cropping margins (pixels removed on each side) of the inference outputs.
DEFAULT_INFERENCE_CROPPING: tuple[int, ...] = (16, 32, 64, 96, 128)

Tensor = Any
TensorDict = dict[str, Any]


class TensorFlowOpLayer(keras.layers.Layer):
    """A TensorFlow operation called on symbolic Keras tensors, replayed on real tensors.

    Built by the dispatcher of this module: ``tf.cast(keras_tensor, tf.float32)`` in model
    code becomes ``TensorFlowOpLayer(tf.cast, ...)([keras_tensor])``. The arguments that
    are not Keras tensors (dtypes, axes, Python numbers, constant tensors) are kept as
    given.

    Args:
        operation: The TensorFlow API function (e.g. ``tf.cast``).
        args: Its positional arguments, Keras tensors included.
        kwargs: Its keyword arguments, Keras tensors included.
    """

    def __init__(self, operation: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        prefix = "tf_" + (re.sub(r"\W+", "_", getattr(operation, "__name__", "op")).strip("_") or "op")
        # Numbered like Keras numbers its own layers (per prefix, per thread, from 1): unique within a model.
        super().__init__(name=f"{prefix}_{keras.backend.get_uid(prefix)}", autocast=False)
        # Tensors must reach the operation as they are (no dtype conversion by Keras).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        structure = (tuple(args), dict(kwargs))
        flat = keras.tree.flatten(structure)
        positions = [i for i, value in enumerate(flat) if isinstance(value, KerasTensor)]
        constants = [None if i in positions else value for i, value in enumerate(flat)]

        # A closure, not attributes: Keras would try to track the structure's contents.
        def replay(tensors: Sequence[Tensor]) -> Any:
            values = list(constants)
            for position, tensor in zip(positions, tensors, strict=True):
                values[position] = tensor
            call_args, call_kwargs = keras.tree.pack_sequence_as(structure, values)
            return operation(*call_args, **call_kwargs)

        self._replay = replay

    def call(self, tensors: Sequence[Tensor]) -> Any:
        """Run the operation on the real tensors (in the order of the symbolic ones)."""
        return self._replay(list(tensors))


class CropBorders(keras.layers.Layer):
    """Remove ``crop`` pixels on each side of the rows and columns of ``(batch, rows, cols, channels)``.

    Unlike ``keras.layers.Cropping2D``, an input too small for the crop gives an empty
    output instead of an error, so one model serves every tile size.
    """

    def __init__(self, crop: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crop = int(crop)

    def call(self, inputs: Tensor) -> Tensor:
        """Slice the borders away."""
        return inputs[:, self.crop:-self.crop, self.crop:-self.crop, :]

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        """Rows and columns shrink by ``2·crop`` (never below 0) when known."""
        def shrink(size: int | None) -> int | None:
            return None if size is None else max(size - 2 * self.crop, 0)

        return (input_shape[0], shrink(input_shape[1]), shrink(input_shape[2]), *input_shape[3:])

    def get_config(self) -> dict[str, Any]:
        """Serialisable settings."""
        return {**super().get_config(), "crop": self.crop}


class _KerasTensorDispatcher(tf.__internal__.dispatch.GlobalOpDispatcher):  # type: ignore[misc]
    """Turns TensorFlow API calls on Keras symbolic tensors into :class:`TensorFlowOpLayer`."""

    def handle(self, op: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        tensors = [v for v in keras.tree.flatten((tuple(args), dict(kwargs))) if isinstance(v, KerasTensor)]
        if not tensors:
            return self.NOT_SUPPORTED
        return TensorFlowOpLayer(op, args, kwargs)(tensors)


_DISPATCHER_LOCK = threading.Lock()
_DISPATCHER: _KerasTensorDispatcher | None = None


def enable_tensorflow_ops_on_keras_tensors() -> None:
    """Let TensorFlow operations take Keras symbolic tensors (idempotent; done on import)."""
    global _DISPATCHER
    with _DISPATCHER_LOCK:
        if _DISPATCHER is None:
            _DISPATCHER = _KerasTensorDispatcher()
            _DISPATCHER.register()


enable_tensorflow_ops_on_keras_tensors()


def _input_element_spec(dataset_element_spec: Any) -> Mapping[str, tf.TensorSpec]:
    """The inputs part of a dataset's ``element_spec``: ``(inputs, targets[, weights])`` or a dict."""
    spec = dataset_element_spec
    if isinstance(spec, (tuple, list)):
        if not spec:
            raise ModelError("the dataset element spec is empty; pass `ds.element_spec` of a dataset that yields "
                             "(inputs, targets).", "MODEL")
        spec = spec[0]
    if not isinstance(spec, Mapping):
        raise ModelError(f"the dataset must yield a dict of named inputs (or (inputs, targets)), got {spec!r}.",
                         "MODEL")
    return spec


def _layer_name_of(tensor: Any) -> str | None:
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    name = getattr(operation, "name", None)
    return str(name) if name else None


def _exported_names(outputs: Mapping[str, Any], model_name: str) -> dict[str, str]:
    """Per output key, the name of the output in the SavedModel: its layer's name, else its key.

    The key is used when the output has no layer name, when another output took that
    name already, or when the name is another output's key (``{"predictions": <layer
    "scores">, "scores": ...}`` exports ``predictions``): a name never means two outputs.

    Raises:
        ModelError: two outputs would still get the same name.
    """
    names: dict[str, str] = {}
    for key, tensor in outputs.items():
        name = _layer_name_of(tensor)
        if not name or name in names.values() or (name in outputs and name != key):
            name = key
        if name in names.values():
            raise ModelError(f"two outputs of {model_name} would be exported as '{name}'; give the output layers "
                             "distinct names.", "MODEL")
        names[key] = name
    return names


class ModelBase(keras.Model):
    """Base class of the models: implement :meth:`get_outputs` (and usually :meth:`normalize_inputs`).

    The network is built at construction (call it inside ``strategy.scope()`` to train
    with a distribution strategy). Model inputs are the dataset's input keys; their
    height and width are left dynamic so the model runs on any tile size. Subclasses that
    need settings in ``get_outputs`` set them before calling ``super().__init__``.

    Args:
        dataset_element_spec: ``ds.element_spec`` of the training dataset: ``(inputs,
            targets)`` or ``(inputs, targets, sample_weights)`` with ``inputs`` a dict of
            ``TensorSpec`` of shape ``[batch, rows, cols, bands]``; or a dict of inputs.
        input_keys: The dataset keys the model takes (default: every input key; for a
            plain dict, the keys starting with ``input_`` if any, else all).
        inference_cropping: Margins, in pixels, of the cropped inference outputs.
        name: Model name (default: the class name).

    Attributes:
        dataset_input_keys: The model's input names.
        inputs_shapes: Per input, the shape without the batch dimension (as in the data).
        inputs_dtypes: Per input, the TensorFlow dtype name.
        inference_cropping: The cropping margins.
        output_names_by_key: Per output key, its name in the SavedModel.
        inference_model: The same network with the cropped outputs, under their exported names.
    """

    def __init__(self, dataset_element_spec: Any, input_keys: Iterable[str] | None = None,
                 inference_cropping: Iterable[int] | None = DEFAULT_INFERENCE_CROPPING,
                 name: str | None = None) -> None:
        input_spec = _input_element_spec(dataset_element_spec)
        if input_keys:
            keys = list(input_keys)
        elif isinstance(dataset_element_spec, (tuple, list)):
            keys = list(input_spec)
        else:
            keys = [k for k in input_spec if k.startswith("input_")] or list(input_spec)
        missing = [k for k in keys if k not in input_spec]
        if missing:
            raise ModelError(f"the dataset has no input {', '.join(missing)}; it has {', '.join(input_spec)}.",
                             "MODEL")
        shapes = {k: tuple(input_spec[k].shape[1:]) for k in keys}
        dtypes = {k: tf.as_dtype(input_spec[k].dtype).name for k in keys}
        cropping = tuple(int(c) for c in (inference_cropping or DEFAULT_INFERENCE_CROPPING))
        if any(c < 1 for c in cropping):
            raise ModelError(f"inference cropping margins must be positive, got {cropping}.", "MODEL")

        # get_outputs runs before keras.Model.__init__ (which refuses attributes set earlier): the
        # settings live in this one dict, read through _spec() and the properties below.
        object.__setattr__(self, "_otbtf_spec", {"keys": keys, "shapes": shapes, "dtypes": dtypes,
                                                 "cropping": cropping, "output_names": {}})
        inputs = self.get_inputs()
        normalized = dict(inputs)
        normalized.update(self.normalize_inputs(inputs))
        outputs = self.get_outputs(normalized)
        if not isinstance(outputs, Mapping) or not outputs:
            raise ModelError(f"{type(self).__name__}.get_outputs must return a non-empty dict of named outputs, "
                             f"got {type(outputs).__name__}.", "MODEL")
        outputs = dict(outputs)
        self._spec()["output_names"] = _exported_names(outputs, type(self).__name__)
        extra = self.postprocess_outputs(outputs=outputs, inputs=inputs, normalized_inputs=normalized)
        super().__init__(inputs=inputs, outputs=outputs, name=name or type(self).__name__)
        self.inference_model = keras.Model(inputs=inputs, outputs=self._inference_outputs(outputs, extra),
                                           name=f"{self.name}_inference")

    def _spec(self) -> dict[str, Any]:
        return self.__dict__["_otbtf_spec"]  # type: ignore[no-any-return]

    @property
    def dataset_input_keys(self) -> list[str]:
        """The model's input names."""
        return self._spec()["keys"]  # type: ignore[no-any-return]

    @property
    def inputs_shapes(self) -> dict[str, tuple[Any, ...]]:
        """Per input, the shape without the batch dimension (as in the data)."""
        return self._spec()["shapes"]  # type: ignore[no-any-return]

    @property
    def inputs_dtypes(self) -> dict[str, str]:
        """Per input, the TensorFlow dtype name."""
        return self._spec()["dtypes"]  # type: ignore[no-any-return]

    @property
    def inference_cropping(self) -> tuple[int, ...]:
        """The cropping margins of the inference outputs."""
        return self._spec()["cropping"]  # type: ignore[no-any-return]

    @property
    def output_names_by_key(self) -> dict[str, str]:
        """Per output key of :meth:`get_outputs`, its name in the SavedModel (see :func:`_exported_names`)."""
        return self._spec()["output_names"]  # type: ignore[no-any-return]

    def get_inputs(self) -> TensorDict:
        """The model's ``keras.Input`` per input key, with dynamic height and width.

        Inputs of rank > 1 (without the batch) get ``None`` rows and columns so the
        exported model takes any tile size; the dtype is the dataset's.
        """
        spec = self._spec()
        inputs: TensorDict = {}
        for key in spec["keys"]:
            shape = list(spec["shapes"][key])
            if len(shape) > 2:
                shape[0] = shape[1] = None
            inputs[key] = keras.Input(shape=tuple(shape), dtype=spec["dtypes"][key], name=key)
        return inputs

    def normalize_inputs(self, inputs: TensorDict) -> TensorDict:
        """Scale the raw inputs for the network; returns the normalized inputs by key.

        The default casts every input to float32 unchanged. Override it (OTBTF's example
        multiplies 12-bit values by 0.0001). TensorFlow operations are allowed here.
        """
        return {key: tf.cast(value, tf.float32) for key, value in inputs.items()}

    def get_outputs(self, normalized_inputs: TensorDict) -> TensorDict:
        """Build the network from the normalized inputs; return the outputs by target key.

        Must be implemented. Create layers here (they are created once) and give the
        output layers names: serving finds outputs by layer name.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement get_outputs(normalized_inputs)")

    def postprocess_outputs(self, outputs: TensorDict, inputs: TensorDict | None = None,
                            normalized_inputs: TensorDict | None = None) -> TensorDict:
        """Extra inference outputs: each spatial output cropped by every margin of ``inference_cropping``.

        Keys are ``<output key>_crop<N>``; the cropping layers are named
        ``<exported output name>_crop<N>`` (see :attr:`output_names_by_key`), the name serving uses.
        """
        extra: TensorDict = {}
        for key, tensor in outputs.items():
            if len(tensor.shape) != 4:
                continue  # only images (batch, rows, cols, channels) are cropped
            exported = self.output_names_by_key.get(key, key)
            for crop in self.inference_cropping:
                extra[crop_name(key, crop)] = CropBorders(
                    crop, name=crop_name(exported, crop))(tensor)
        return extra

    def _inference_outputs(self, outputs: TensorDict, extra: TensorDict) -> TensorDict:
        """The outputs under :attr:`output_names_by_key`, the extra ones under their layer's name, else their key."""
        named: TensorDict = {self.output_names_by_key[key]: tensor for key, tensor in outputs.items()}
        for key, tensor in extra.items():
            name = _layer_name_of(tensor) or key
            if name in named:
                name = key
            if name in named:
                raise ModelError(f"two outputs of {type(self).__name__} would be exported as '{name}'; give the "
                                 "output layers distinct names.", "MODEL")
            named[name] = tensor
        return named

    @property
    def inference_output_names(self) -> list[str]:
        """Names of the outputs in the SavedModel, cropped ones included (Keras' ``output_names`` are layer names)."""
        return list(self.inference_model.output)

    def export(self, filepath: str | Path, format: str = "tf_saved_model",
               verbose: bool | None = None, input_signature: Any = None, **kwargs: Any) -> None:
        """Export the inference model (all outputs, cropped ones included) as a SavedModel.

        The serving signature takes the inputs by name with dynamic height and width and
        returns the outputs by :attr:`inference_output_names`.
        """
        self.inference_model.export(str(filepath), format=format, verbose=bool(verbose),
                                    input_signature=input_signature, **kwargs)

    def save(self, filepath: str | Path, overwrite: bool = True, zipped: bool | None = None, **kwargs: Any) -> None:
        """Save like Keras for ``.keras``/``.h5`` paths; any other path gets a SavedModel (as OTBTF's docs do).

        Reloading a ``.keras`` file needs the model class registered with Keras; to keep
        weights across sessions, ``save_weights``/``load_weights`` always work.
        """
        if str(filepath).endswith((".keras", ".h5")):
            super().save(filepath, overwrite=overwrite, zipped=zipped, **kwargs)
        else:
            self.export(filepath)

    def summary(self, strategy: Any = None, **kwargs: Any) -> None:  # type: ignore[override]
        """Print the model summary (only on the chief worker of a multi-worker strategy)."""
        if strategy is None or is_chief(strategy):
            kwargs.setdefault("line_length", 120)
            super().summary(**kwargs)


def is_chief(strategy: Any) -> bool:
    """Whether this process is the chief of ``strategy`` (always true without multi-worker training)."""
    resolver = getattr(getattr(strategy, "extended", None), "_cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return bool(task_type == "chief" or (task_type == "worker" and task_id == 0
                                         and "chief" not in resolver.cluster_spec().as_dict()))
