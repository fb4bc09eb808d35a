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


def backbone_maps_key(image_key: str) -> str:
    """Training-batch key of a camera's cached backbone feature maps, used in place of its images."""
    return f"{image_key}.backbone_maps"


def low_dim_key(name: str) -> str:
    """Dataset key of an extra low-dimensional observation, e.g. `environment_state`."""
    return f"observation.{name}"
