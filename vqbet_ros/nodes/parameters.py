"""Node parameters: declared from a default and a description, read back as checked plain Python values.

Every node declares and reads its parameters through `NodeParameters`, so they all behave alike:
- Parameters are declared dynamically typed, so a value of the wrong type given on the command line or in a
  params file never raises inside the node's constructor (rclpy refuses `joint_max_age_s:=1` for a parameter
  declared with a float default). The value is checked when it is read, usually in `on_configure`, and a
  wrong one becomes a `ConfigError` that names the parameter, the value and the expected type.
- Integers are accepted where floats are expected (`joint_max_age_s:=1`, `joint_lower_limits:=[-1, 1]`).
- Arrays come back as lists; an array left unset comes back as `[]`.
- A parameter may be declared with its allowed `choices` or bounds (`low`, `high`, inclusive, for a number or
  each entry of an array); `value()` refuses anything else, NaN included, naming the parameter.
- A node whose parameters may change at run time checks the proposed values in its on-set-parameters
  callback with `refusal()`, by the same rules, so a bad `ros2 param set` is refused with the reason.

    params = NodeParameters(node)
    params.declare("joint_max_age_s", 0.2, "joint states older than this stop commands (s)")
    params.declare("joint_lower_limits", Parameter.Type.DOUBLE_ARRAY, "per joint; unset = none")
    params.declare("image_size", 96, "camera image side (px)", low=8, high=1024)
    params.value("joint_max_age_s")  # 1.0 for joint_max_age_s:=1

A node's parameters form a table, name -> (default, description) or (default, description, rules), declared
with `declare_all` and read with `values`. The parameters that configure a dataclass (`RuntimeConfig`,
`RecorderConfig`, ...) are not typed again in the node: `config_parameters(cls)` makes their table entries
from the fields (default, the `description` of `config_io.described`, the choices of a `Literal`), and the
node builds the dataclass from `values` with `config_io.from_dict`, which checks them as any config is.
"""
from __future__ import annotations

import dataclasses
import math
import typing

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidTopicNameException, ParameterUninitializedException
from rclpy.parameter import Parameter
from rclpy.validate_topic_name import validate_topic_name

from vqbet_ros.config_io import ConfigError

_T = Parameter.Type
# expected type -> (Python types accepted for one value, description for messages)
_SCALARS = {
    _T.BOOL: ((bool,), "true or false"),
    _T.INTEGER: ((int,), "an integer"),
    _T.DOUBLE: ((int, float), "a number"),
    _T.STRING: ((str,), "a string"),
}
_ARRAYS = {_T.BOOL_ARRAY: _T.BOOL, _T.INTEGER_ARRAY: _T.INTEGER, _T.DOUBLE_ARRAY: _T.DOUBLE,
           _T.STRING_ARRAY: _T.STRING}
_ARRAY_OF = {bool: _T.BOOL_ARRAY, int: _T.INTEGER_ARRAY, float: _T.DOUBLE_ARRAY, str: _T.STRING_ARRAY}
_CURRENT = object()  # `value()` without a proposed value: read the parameter's current one


class NodeParameters:
    """The parameters of one node (see the module docstring)."""

    def __init__(self, node):
        self._node = node
        self._types: dict[str, Parameter.Type] = {}
        self._rules: dict[str, tuple] = {}  # name -> (choices, low, high)

    def declare(self, name: str, default, description: str, *, choices=None, low=None, high=None) -> None:
        """Declare `name` unless it is declared already. `default` is the value, or a `Parameter.Type` for an
        array left unset; `choices`, `low` and `high` restrict the value (see the module docstring)."""
        if isinstance(default, Parameter.Type):
            expected, default = default, None
        else:
            expected = Parameter.Type.from_parameter_value(default)
        self._types[name] = expected
        self._rules[name] = (choices, low, high)
        if not self._node.has_parameter(name):
            self._node.declare_parameter(name, default, ParameterDescriptor(description=description,
                                                                            dynamic_typing=True))

    def declare_all(self, table: dict[str, tuple]) -> None:
        """Declare every entry of `table`: name -> (default, description) or (default, description, rules),
        rules being `declare`'s keywords (`choices`, `low`, `high`)."""
        for name, (default, description, *rules) in table.items():
            self.declare(name, default, description, **(rules[0] if rules else {}))

    def values(self, names) -> dict:
        """name -> checked value (`value()`) for each of `names` (a table's keys)."""
        return {name: self.value(name) for name in names}

    def refuse_renamed(self, renamed: dict[str, str]) -> None:
        """Raise a `ConfigError` naming the replacement when a parameter of an old name (`renamed`: old name ->
        what to set instead) is given: rclpy ignores a parameter nobody declares without a word. Call it
        before `declare`; the old names are declared only for this check."""
        for old, new in renamed.items():
            self._node.declare_parameter(old, None, ParameterDescriptor(dynamic_typing=True))
            given = self._node.get_parameter(old).value
            self._node.undeclare_parameter(old)
            if given is not None:
                raise ConfigError(f"parameter `{old}` is no longer read; set {new} instead")

    def value(self, name: str, proposed=_CURRENT):
        """The checked value of a declared parameter (see the module docstring), or of `proposed`, a value
        handed to an on-set-parameters callback."""
        if proposed is not _CURRENT:
            value = proposed
        else:
            try:
                value = self._node.get_parameter(name).value
            except ParameterUninitializedException:  # statically typed and unset (declared elsewhere)
                value = None
        expected = self._types[name]
        if expected in _ARRAYS:
            if value is None:
                return []
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
                raise ConfigError(f"parameter `{name}` is {value!r}; expected a list, each entry "
                                  f"{_SCALARS[_ARRAYS[expected]][1]}")
            return [self._allowed(name, f"`{name}` entry", _checked(f"`{name}` entry", v, _ARRAYS[expected]))
                    for v in list(value)]
        if value is None:
            raise ConfigError(f"parameter `{name}` is not set; give it a value ({_SCALARS[expected][1]})")
        return self._allowed(name, f"parameter `{name}`", _checked(f"parameter `{name}`", value, expected))

    def refusal(self, parameters: list[Parameter]) -> str | None:
        """Why one of `parameters` (proposed to an on-set-parameters callback) is refused, or None when every
        one declared here passes `value()`'s checks."""
        for param in parameters:
            if param.name in self._types:
                try:
                    self.value(param.name, param.value)
                except ConfigError as err:
                    return str(err)
        return None

    def _allowed(self, name: str, what: str, value):
        choices, low, high = self._rules[name]
        if choices is not None and value not in choices:
            raise ConfigError(f"{what} is {value!r}; expected one of {', '.join(map(repr, choices))}")
        # Written so that NaN fails (a comparison with NaN is false).
        if not ((low is None or value >= low) and (high is None or value <= high)):
            kind = "an integer" if isinstance(value, int) else "a number"
            bounds = (f"in [{low}, {high}]" if low is not None and high is not None
                      else f">= {low}" if low is not None else f"<= {high}")
            raise ConfigError(f"{what} is {value!r}; expected {kind} {bounds}")
        return value

    def positive_seconds(self, name: str) -> float:
        """A float parameter that must be a finite positive number of seconds."""
        value = self.value(name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"parameter `{name}` is {value}; expected a finite number of seconds > 0")
        return value

    def topic(self, name: str, suffix: str = "") -> str:
        """A string parameter that must be a valid topic name (relative, absolute or `~/private`), once
        `suffix` is appended (for a parameter that is a prefix of topic names)."""
        value = self.value(name)
        try:
            validate_topic_name(value + suffix)
        except InvalidTopicNameException as err:  # its text spans three lines: keep the reason
            reason = str(err).splitlines()[0].rstrip(":")
            made = f", so {value + suffix!r} is" if suffix else ","
            raise ConfigError(f"parameter `{name}` is {value!r}{made} not a valid topic name ({reason}); "
                              "letters, digits, `_` and `/`, e.g. /camera/image_raw") from None
        return value


def config_parameters(cls, exclude: tuple[str, ...] = ()) -> dict[str, tuple]:
    """The table entries (see the module docstring) of dataclass `cls`'s fields, but `exclude`: the field's
    default (a required field: an empty string, or an unset array), its metadata `description` and, for a
    `Literal` type, its choices."""
    hints = typing.get_type_hints(cls)
    table = {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        tp = hints[f.name]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "" if tp is str else []
        if isinstance(default, (list, tuple)) and not default:  # rclpy infers no type from an empty list
            default = _ARRAY_OF[typing.get_args(tp)[0]]
        rules = {"choices": typing.get_args(tp)} if typing.get_origin(tp) is typing.Literal else {}
        table[f.name] = (default, f.metadata["description"], rules)
    return table


def _checked(what: str, value, expected: Parameter.Type):
    types, description = _SCALARS[expected]
    if hasattr(value, "item"):  # numpy scalars from array parameters
        value = value.item()
    if (isinstance(value, bool) and expected != _T.BOOL) or not isinstance(value, types):
        raise ConfigError(f"{what} is {value!r}; expected {description}")
    return float(value) if expected == _T.DOUBLE else value
