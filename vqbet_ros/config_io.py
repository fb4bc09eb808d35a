"""Typed dataclass configs to and from YAML, with validation that names the key path.

Every config in the package (model, training, runtime) is a plain dataclass; this module is the one place
that turns YAML (or command-line `a.b=value` overrides) into those dataclasses. Unknown keys, wrong types
and values refused by a dataclass's `__post_init__` are reported with the full key path, e.g.
"`prior.n_head`: expected int, got 'six'".
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value a user wrote is wrong; the message names the key path and what is expected."""


def described(default: Any = dataclasses.MISSING, description: str = "") -> Any:
    """A dataclass field with a one-line `description` in its metadata: what a node declaring the config's
    fields as ROS parameters shows for each (`nodes/parameters.py`). A list default is copied per instance;
    no default makes the field required."""
    metadata = {"description": description}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"`{path}`: {value!r} fits none of {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"`{path}`: got {value!r}, expected one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"`{path}`: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{path}`: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"`{path}`: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"`{path}`: expected a mapping, got {value!r}")
        key_tp, val_tp = args if args else (Any, Any)
        return {_convert(key_tp, k, f"{path}"): _convert(val_tp, v, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, str):
            value = _float_from_text(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{path}`: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"`{path}`: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"`{path}`: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"`{path}`: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"`{path}`: expected {_type_name(tp)}, got {value!r}")
    return value


def _float_from_text(text: str) -> float | str:
    """YAML 1.1 reads `8e-4` (no dot) as a string; accept it for float fields, as a user means it."""
    try:
        return float(text)
    except ValueError:
        return text


def from_dict(cls: type[T], data: dict, path: str = "") -> T:
    """Build dataclass `cls` from a nested dict, refusing unknown keys and wrong types by key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"`{path or cls.__name__}`: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"`{path}`" if path else cls.__name__
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{path}.{name}" if path else name)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"`{path or cls.__name__}`: missing required key(s) {missing}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(_prefix_path(path, str(err))) from None


def _prefix_path(path: str, message: str) -> str:
    """"`fps`: ..." raised inside `spec` becomes "`spec.fps`: ..."."""
    if not path:
        return message
    if message.startswith("`") and "`" in message[1:]:
        return f"`{path}.{message[1:]}"
    return f"`{path}`: {message}"


def to_dict(obj: Any) -> Any:
    """Plain YAML-safe structure of a (nested) dataclass; tuples become lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected the form key.path=value, e.g. prior.n_layer=4")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: `{part}` is not a mapping")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_yaml(cls: type[T], path: str | Path, overrides: list[str] | None = None) -> T:
    """Read YAML file `path` into dataclass `cls`; errors name the file and the key path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file `{path}` does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"`{path}` is not valid YAML: {err}") from None
    apply_overrides(data, overrides or [])
    try:
        return from_dict(cls, data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def save_yaml(obj: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))
