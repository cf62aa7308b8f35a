"""Frozen job configurations, shared by every front end.

Each core job is described by a frozen dataclass (its *config*). The Processing
algorithms, the command line and Python callers all fill the same config; the worker
receives it as JSON. This module converts configs to and from plain dicts, validating
types, and builds command-line options from the dataclass fields.

Fields may carry ``metadata={"param": "SOURCES", "help": "..."}``: ``param`` is the
user-facing parameter name used in error messages, ``help`` the option's help text.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.jobs.params import list_items

T = TypeVar("T")


def parameter_name(field: dataclasses.Field[Any]) -> str:
    """User-facing name of a config field: its ``param`` metadata, else its name upper-cased."""
    return str(field.metadata.get("param", field.name.upper()))


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) < len(get_args(tp)):
            return True, args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007
    return False, tp


def convert_value(value: Any, tp: Any, param: str) -> Any:
    """Convert ``value`` (text, number, JSON-like) to the type ``tp`` of a config field.

    Raises:
        InputError: naming ``param`` when the value cannot be converted.
    """
    return _convert(value, tp, param)


def _convert(value: Any, tp: Any, param: str) -> Any:
    optional, inner = _is_optional(tp)
    if value is None:
        if optional or tp is Any:
            return None
        raise InputError("a value is required.", param)
    tp = inner
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise InputError(f"expected an object with fields, got {value!r}.", param)
        return config_from_dict(tp, value, prefix=param)
    if origin in (tuple, list):
        if isinstance(value, str):
            value = list_items(value)
        if not isinstance(value, (list, tuple)):
            value = [value]
        args = get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{param}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(value) != len(args):
                raise InputError(f"expected {len(args)} values, got {len(value)} ({value!r}).", param)
            return tuple(_convert(v, a, f"{param}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        converted = [_convert(v, item, f"{param}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise InputError(f"expected a JSON object, got {value!r}.", param) from exc
        if not isinstance(value, dict):
            raise InputError(f"expected a mapping, got {value!r}.", param)
        key_t, val_t = get_args(tp) or (Any, Any)
        return {_convert(k, key_t, param): _convert(v, val_t, f"{param}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise InputError(f"'{value}' is not one of {', '.join(map(str, allowed))}.", param)
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1", "on", "false", "no", "0", "off"}:
            return value.strip().lower() in {"true", "yes", "1", "on"}
        raise InputError(f"expected true or false (or on/off), got {value!r}.", param)
    if tp is int:
        if isinstance(value, bool):
            raise InputError(f"expected an integer, got {value!r}.", param)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError as exc:
            raise InputError(f"expected an integer, got {value!r}.", param) from exc
    if tp is float:
        if isinstance(value, bool):
            raise InputError(f"expected a number, got {value!r}.", param)
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise InputError(f"expected a number, got {value!r}.", param) from exc
    if tp is str:
        if isinstance(value, (dict, list)):
            raise InputError(f"expected text, got {value!r}.", param)
        return str(value)
    return value


def config_from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build a config dataclass from a plain dict, converting and validating each field.

    Unknown keys are rejected; missing fields take their defaults.

    Raises:
        InputError: naming the parameter of a bad or missing value, or an unknown key.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise InputError(f"unknown setting(s) {', '.join(unknown)}; known settings are: {known}.", prefix or None)
    values: dict[str, Any] = {}
    for name, field in fields.items():
        param = parameter_name(field) if not prefix else f"{prefix}.{field.name}"
        if name in data:
            values[name] = _convert(data[name], hints[name], param)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise InputError("a value is required.", param)
    return cls(**values)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain, JSON-serialisable dict of a config (tuples become lists)."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    result = plain(config)
    assert isinstance(result, dict)
    return result


def add_config_arguments(parser: argparse.ArgumentParser, cls: type[Any]) -> None:
    """Add one ``--field-name`` option per field of ``cls`` (values are parsed later)."""
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        _, inner = _is_optional(hints[field.name])
        is_list = get_origin(inner) in (list, tuple) and not (
            get_origin(inner) is tuple and get_args(inner) and get_args(inner)[-1] is not Ellipsis)
        help_text = str(field.metadata.get("help", ""))
        if field.default is not dataclasses.MISSING and field.default is not None:
            help_text += f" (default: {field.default})"
        flag = "--" + field.name.replace("_", "-")
        if is_list:
            parser.add_argument(flag, dest=field.name, nargs="*", default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=field.name, default=None, help=help_text)


def parse_cli_value(text: str) -> Any:
    """Interpret one command-line value: JSON if it parses as an object/array, else the text."""
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    return text


def config_from_args(cls: type[T], namespace: argparse.Namespace, base: dict[str, Any] | None = None) -> T:
    """Build a config from parsed options (see :func:`add_config_arguments`) over ``base``."""
    data = dict(base or {})
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(namespace, field.name, None)
        if value is None:
            continue
        if isinstance(value, list):
            data[field.name] = [parse_cli_value(v) for v in value]
        else:
            data[field.name] = parse_cli_value(value)
    return config_from_dict(cls, data)
