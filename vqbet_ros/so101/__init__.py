"""The SO-101 arm in MuJoCo as a robot, without ROS: `scene` (the package's model plus our cameras and pads),
`robot.SO101Robot` (physics, task, sensing) and `robot.SO101Cameras` (rendering), `trajectory`
(joint_trajectory_controller semantics with time as an argument) and `expert.ScriptedExpert` (a leader arm
driven by inverse kinematics), and `wiring` (the policy parameters that connect a checkpoint to the sim, shared
by `launch/so101_demo.launch.py` and `vqbet-demo`). The ROS side is `nodes/so101_sim_node.py` and
`nodes/so101_teleop_node.py`; `vqbet-demo`'s part is `demo_so101.py`."""
import os

# Headless rendering by default (software OpenGL through EGL where there is no GPU; docs/so101.md). Set before
# any submodule imports mujoco, which reads it once, on import (so import this package before mujoco).
os.environ.setdefault("MUJOCO_GL", "egl")
