"""The PushT wing, without ROS: `robot.PushTRobot` (gym_pusht with joints, a camera, low-dim observations and a
sim clock), `schedule.TargetSchedule` (which commanded position each control step follows),
`demo_replay.PushTDemos` (the human demonstrations of the Diffusion Policy zarr) and `rollout` (batched
episodes for `vqbet-eval` and the trainer's evaluation). The ROS side is `nodes/pusht_sim_node.py` and
`nodes/replay_teleop_node.py`. A second robot is a sibling folder (`so101/`)."""
