"""Build/installation for vqbet_ros.

Two ways in (see README.md):
- ROS 2 workspace: `colcon build` (rclpy and messages come from your ROS 2 install; torch from pip);
- plain Python 3.11: `pip install -e .[ros,sim,test]`, where `ros` pulls rclpy and the messages as
  `ros-kilted-*` wheels. Keep it an extra so it never shadows a system ROS 2 install.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "vqbet_ros"

ROS_WHEELS = [
    "ros-kilted-rclpy[fastrtps]",
    "ros-kilted-sensor-msgs",
    "ros-kilted-std-msgs",
    "ros-kilted-geometry-msgs",
    "ros-kilted-trajectory-msgs",
    "ros-kilted-std-srvs",
    "ros-kilted-diagnostic-msgs",
    "ros-kilted-lifecycle-msgs",
    "ros-kilted-rosgraph-msgs",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
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
        "ros": ROS_WHEELS,
        "sim": ["gym-pusht"],
        "train": ["tensorboard", "gym-pusht"],
        "test": [
            "pytest",
            "pytest-timeout",
            "colcon-core",
            "colcon-ros",
            "colcon-python-setup-py",
            "ros-kilted-ament-package",
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
            "vqbet-record-keys = vqbet_ros.nodes.record_keys:main",
            "vqbet-train = vqbet_ros.training.train:main",
            "vqbet-eval = vqbet_ros.training.evaluate:main",
            "vqbet-convert = vqbet_ros.data.convert_zarr:main",
            "vqbet-demo = vqbet_ros.demo:main",
        ],
    },
)
