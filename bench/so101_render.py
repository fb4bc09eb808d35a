"""CPU cost of rendering the SO-101 cameras, per frame, by image size, mesh detail and render flags.

    PYTHONPATH=$PWD nice -n 15 python bench/so101_render.py [--frames 10]

Prints one line per setting: CPU milliseconds per frame (process time, all of MuJoCo's and Mesa's threads)
and wall milliseconds. On a shared machine the CPU figure is the one that carries over: the wall time of a
niced process mostly measures the other load. Each camera is rendered from a state in the middle of a grasp.
"""
import argparse
import time

import vqbet_ros.so101  # noqa: F401  (before mujoco: headless OpenGL)
import mujoco

from vqbet_ros.so101 import scene
from vqbet_ros.so101.expert import ScriptedExpert
from vqbet_ros.so101.robot import SO101Config, SO101Robot

FLAGS = (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION, mujoco.mjtRndFlag.mjRND_SKYBOX)


def grasp_state():
    robot = SO101Robot(SO101Config(cameras={}))
    expert = ScriptedExpert(robot.model)
    expert.plan(robot.block_pose, seed=0)
    while robot.time_s < 3.5:
        robot.tick(expert.target(robot.time_s))
    return robot.qpos


def measure(model, qpos, camera, width, height, plain, frames):
    model.vis.global_.offwidth, model.vis.global_.offheight = max(width, 64), max(height, 64)
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_forward(model, data)
    with mujoco.Renderer(model, height, width) as renderer:
        def render():
            renderer.update_scene(data, camera=camera)
            for flag in FLAGS:
                renderer.scene.flags[flag] = 0 if plain else renderer.scene.flags[flag]
            return renderer.render()
        render()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(frames):
            render()
        return (time.process_time() - cpu) / frames * 1e3, (time.perf_counter() - wall) / frames * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10)
    args = parser.parse_args()
    qpos = grasp_state()
    models = {"shipped meshes": scene.build_spec().compile(),
              f"meshes thinned ({scene.VISUAL_MESH_CELL_M * 1e3:.0f} mm)":
                  scene.build_spec(scene.VISUAL_MESH_CELL_M).compile()}
    print(f"{'meshes':<26} {'camera':<6} {'size':>8} {'flags':<26} {'cpu ms':>7} {'wall ms':>8}")
    for label, model in models.items():
        for camera in scene.CAMERA_NAMES:
            for width, height in ((128, 96), (320, 240)):
                for plain in (False, True):
                    cpu, wall = measure(model, qpos, camera, width, height, plain, args.frames)
                    flags = "no shadow/reflection/sky" if plain else "as shipped"
                    print(f"{label:<26} {camera:<6} {width:>4}x{height:<3} {flags:<26} {cpu:7.1f} {wall:8.1f}")


if __name__ == "__main__":
    main()
