"""Success rate of the scripted SO-101 expert, without ROS and without rendering.

    PYTHONPATH=$PWD nice -n 15 python bench/so101_expert.py --episodes 50 [--first-seed 0] [--disturbance-rad 0.03]

Episode n resets the block from seed first_seed + n and lets the expert (its variation drawn from the same
seed) command the arm at the control rate for its whole path plus 1 s; prints each episode and the total.
With --disturbance-rad the arm is pushed off the path until the first grasp, as the teleop does while
recording (`so101.disturbance`); after a missed grasp the expert grasps again (at most --grasp-attempts).
"""
import argparse
import time

from vqbet_ros.so101.disturbance import FollowerDisturbance
from vqbet_ros.so101.expert import ScriptedExpert
from vqbet_ros.so101.robot import SO101Config, SO101Robot


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--disturbance-rad", type=float, default=0.0)
    parser.add_argument("--disturbance-time-constant-s", type=float, default=0.5)
    parser.add_argument("--grasp-attempts", type=int, default=3)
    args = parser.parse_args()
    robot = SO101Robot(SO101Config(cameras={}))
    expert = ScriptedExpert(robot.model, args.grasp_attempts)
    disturbance = FollowerDisturbance(args.disturbance_rad, args.disturbance_time_constant_s,
                                      robot.config.control_hz)
    successes, pads, regrasped, cpu0 = 0, [0, 0], 0, time.process_time()
    for seed in range(args.first_seed, args.first_seed + args.episodes):
        robot.reset(seed)
        choice = expert.plan(robot.block_pose, seed)
        disturbance.reset(seed)
        target = None
        while robot.time_s < expert.duration_s + 1.0:
            if robot.tick_index % robot.config.ticks_per_control == 0:
                expert.regrasp_if_missed(robot.time_s, robot.block_pose)
                target = (expert.target(robot.time_s)
                          + disturbance.step_before(robot.time_s, expert.first_grasp_time_s))
            robot.tick(target)
        successes += robot.success
        pads[choice.pad] += 1
        regrasped += expert.attempt > 1
        print(f"seed {seed}: {'success' if robot.success else 'FAIL'} pad {choice.pad} side "
              f"{choice.approach_side:+.0f} pace {choice.pace:.2f} grasps {expert.attempt} "
              f"path {expert.duration_s:.1f} s", flush=True)
    print(f"success {successes}/{args.episodes} ({100 * successes / args.episodes:.0f}%), pads chosen {pads}, "
          f"episodes that grasped again {regrasped}, {time.process_time() - cpu0:.0f} s CPU")


if __name__ == "__main__":
    main()
