"""Dataset and batch key strings, shared by the data, model, training and runtime layers (LeRobot v3 names)."""

ACTION = "action"
STATE = "observation.state"
IMAGES_PREFIX = "observation.images."
ENV_STATE = "observation.environment_state"
ACTION_IS_PAD = "action_is_pad"

TIMESTAMP = "timestamp"
FRAME_INDEX = "frame_index"
EPISODE_INDEX = "episode_index"
INDEX = "index"
TASK_INDEX = "task_index"


def image_key(camera: str) -> str:
    return f"{IMAGES_PREFIX}{camera}"


def frozen_output_key(image_key: str) -> str:
    """Training-batch key of what a camera's frozen encoder part gives for its frames, used in place of them."""
    return f"{image_key}.frozen_output"


def low_dim_key(name: str) -> str:
    """Dataset key of an extra low-dimensional observation, e.g. `environment_state`."""
    return f"observation.{name}"
