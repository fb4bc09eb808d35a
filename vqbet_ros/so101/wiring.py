"""How a policy meets the SO-101 sim: `wiring(spec)`, the policy node parameters that connect a checkpoint to the
sim's topics, and the lockstep parameters the sim and the policy need for each execution mode. ROS-free (names
and dicts only), so that the launch file (`launch/so101_demo.launch.py`) and `vqbet-demo --robot so101`
(`demo_so101.py`) share it.

Wiring (by name, else a clear error): the checkpoint's joints are SO-101 joints (`so101.scene.JOINT_NAMES`;
its actions must cover all six, the trajectory the sim executes), its cameras `scene` / `wrist`
(`{camera}_camera/image_raw`), its low-dim input `block_pose` (7: x y z qx qy qz qw, the privileged
`so101/block_pose` PoseStamped, as the recorder stores it). Chunks go as `JointTrajectory` to
`arm_controller/joint_trajectory`.

Lockstep (fast mode, `demo_so101.py`'s docstring says why): temporal ensembling sends a chunk every period
(`lockstep: each_step`); open-loop execution sends one chunk per chunk length (`lockstep: chunk`), and the sim
also waits each period for the policy's per-tick target (`publish_commands` on `TICK_TOPIC`).
"""
from __future__ import annotations

from vqbet_ros.model.checkpoint_search import CheckpointName

CHECKPOINT = CheckpointName("so101", "pick")
TRAJECTORY_TOPIC = "/arm_controller/joint_trajectory"
BLOCK_POSE = "block_pose"  # the low-dim input the sim provides, and its size (x y z qx qy qz qw)
BLOCK_POSE_SIZE = 7
# Open loop: the policy node's per-tick target (`publish_commands`), which the sim waits for each period.
TICK_TOPIC = "/policy_node/commands"


def wiring(spec) -> dict:
    """Policy node parameters that connect a checkpoint with this spec to the SO-101 sim's topics."""
    from vqbet_ros.so101.scene import CAMERA_NAMES, JOINT_NAMES

    unknown = [n for n in dict.fromkeys([*spec.joint_names, *spec.action_names]) if n not in JOINT_NAMES]
    if unknown:
        raise ValueError(f"the checkpoint's joints {unknown} are not SO-101 joints {list(JOINT_NAMES)}; an SO-101 "
                         "checkpoint observes and commands the arm's joints by name (record from the so101 sim)")
    if set(spec.action_names) != set(JOINT_NAMES):
        raise ValueError(f"the checkpoint commands {list(spec.action_names)}; the SO-101 sim executes trajectories "
                         f"of all six joints {list(JOINT_NAMES)}")
    params: dict = {"joint_states_topic": "/joint_states", "trajectory_topic": TRAJECTORY_TOPIC}
    for camera in spec.cameras:
        if camera not in CAMERA_NAMES:
            raise ValueError(f"the checkpoint's camera `{camera}` is not an SO-101 sim camera {list(CAMERA_NAMES)}")
        params[f"cameras.{camera}.topic"] = f"/{camera}_camera/image_raw"
    for name, size in spec.low_dim.items():
        if name != BLOCK_POSE or size != BLOCK_POSE_SIZE:
            raise ValueError(f"the checkpoint's low-dim input `{name}` has {size} values; the SO-101 sim offers "
                             f"`{BLOCK_POSE}` ({BLOCK_POSE_SIZE}: x y z qx qy qz qw)")
        params[f"low_dim.{name}.topic"] = "/so101/block_pose"
        params[f"low_dim.{name}.type"] = "pose_stamped"
    return params


def sim_lockstep(execution: str) -> dict:
    """The sim's lockstep parameters for a policy executing chunks this way (module docstring)."""
    if execution == "ensemble":
        return {"lockstep": "each_step", "lockstep_topic": ""}
    return {"lockstep": "chunk", "lockstep_topic": TICK_TOPIC}


def policy_lockstep(execution: str) -> dict:
    """The policy node's parameters that `sim_lockstep` relies on: open loop, a message per control tick."""
    return {} if execution == "ensemble" else {"publish_commands": True, "commands_topic": TICK_TOPIC}
