"""The PushT wing, without ROS:
- `robot.PushTRobot`: gym_pusht with joints, a camera, low-dim observations and a sim clock;
- `schedule.TargetSchedule`: which commanded position each control step follows;
- `sim.PushTSim`: the sim loop (episodes, commands, lockstep, stamps), time as an argument;
- `demo_replay.PushTDemos`: the human demonstrations of the Diffusion Policy zarr;
- `episode` and `rollout`: an episode's outcome and the success rule, batched episodes for `vqbet-eval` and
  the trainer's evaluation;
- `wiring`: the sim's topics and the policy parameters that connect a checkpoint to them, shared by
  `launch/sim_demo.launch.py` and `vqbet-demo`.
The ROS side is `nodes/pusht_sim_node.py` and `nodes/replay_teleop_node.py`; `vqbet-demo`'s part is
`demo_pusht.py`. A second robot is a sibling folder (`so101/`)."""
