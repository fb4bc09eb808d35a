"""Node parameters: declared from a default and a description, read back as checked plain Python values.

Every node declares and reads its parameters through `NodeParameters`, so they all behave alike:
- Parameters are declared dynamically typed, so a value of the wrong type given on the command line or in a
  params file never raises inside the node's constructor (rclpy refuses `joint_max_age_s:=1` for a parameter
  declared with a float default). The value is checked when it is read, usually in `on_configure`, and a
  wrong one becomes a `ConfigError` that names the parameter, the value and the expected type.
- Integers are accepted where floats are expected (`joint_max_age_s:=1`, `joint_lower_limits:=[-1, 1]`).
- Arrays come back as lists; an array left unset comes back as `[]`.

    params = NodeParameters(node)
    params.declare("joint_max_age_s", 0.2, "joint states older than this stop commands (s)")
    params.declare("joint_lower_limits", Parameter.Type.DOUBLE_ARRAY, "per joint; unset = none")
    params.value("joint_max_age_s")  # 1.0 for joint_max_age_s:=1
"""
from __future__ import annotations

import math

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


class NodeParameters:
    """The parameters of one node (see the module docstring)."""

    def __init__(self, node):
        self._node = node
        self._types: dict[str, Parameter.Type] = {}

    def declare(self, name: str, default, description: str) -> None:
        """Declare `name` unless it is declared already. `default` is the value, or a `Parameter.Type` for an
        array left unset."""
        if isinstance(default, Parameter.Type):
            expected, default = default, None
        else:
            expected = Parameter.Type.from_parameter_value(default)
        self._types[name] = expected
        if not self._node.has_parameter(name):
            self._node.declare_parameter(name, default, ParameterDescriptor(description=description,
                                                                            dynamic_typing=True))

    def value(self, name: str):
        """The checked value of a declared parameter (see the module docstring)."""
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
            return [_checked(f"`{name}` entry", v, _ARRAYS[expected]) for v in list(value)]
        if value is None:
            raise ConfigError(f"parameter `{name}` is not set; give it a value ({_SCALARS[expected][1]})")
        return _checked(f"parameter `{name}`", value, expected)

    def positive_seconds(self, name: str) -> float:
        """A float parameter that must be a finite positive number of seconds."""
        value = self.value(name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"parameter `{name}` is {value}; expected a finite number of seconds > 0")
        return value

    def topic(self, name: str) -> str:
        """A string parameter that must be a valid topic name (relative, absolute or `~/private`)."""
        value = self.value(name)
        try:
            validate_topic_name(value)
        except InvalidTopicNameException as err:  # its text spans three lines: keep the reason
            reason = str(err).splitlines()[0].rstrip(":")
            raise ConfigError(f"parameter `{name}` is {value!r}, not a valid topic name ({reason}); "
                              "letters, digits, `_` and `/`, e.g. /camera/image_raw") from None
        return value


def _checked(what: str, value, expected: Parameter.Type):
    types, description = _SCALARS[expected]
    if hasattr(value, "item"):  # numpy scalars from array parameters
        value = value.item()
    if (isinstance(value, bool) and expected != _T.BOOL) or not isinstance(value, types):
        raise ConfigError(f"{what} is {value!r}; expected {description}")
    return float(value) if expected == _T.DOUBLE else value
