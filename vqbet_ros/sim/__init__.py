"""PushT as a robot, without ROS: `pusht.PushTRobot` (gym_pusht with joints, a camera, low-dim observations and a
sim clock), `schedule.TargetSchedule` (which commanded position each control step follows) and
`demo_replay.PushTDemos` (the human demonstrations of the Diffusion Policy zarr). The ROS side is
`nodes/pusht_sim_node.py` and `nodes/replay_teleop_node.py`."""
