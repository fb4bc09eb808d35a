"""Record scripted demos of the simulated SO-101 through the recorder: the sim, a scripted leader arm and the
recorder node. The launch ends (and the recorder saves everything) once the teleop has run `episodes` demos.

    ros2 launch vqbet_ros so101_record.launch.py episodes:=50 root:=$HOME/data dataset_name:=so101_pick

The sim runs in lockstep with the teleop on `/clock` (`mode: fast`), so no frame is lost whatever this machine's
load; the teleop holds the arm at rest until the recorder has started each episode, saves each demo when the
block rests on a pad and discards a failed one (`config/so101_record.yaml`, docs/so101.md). The dataset is a
LeRobot v3 dataset: two cameras, the six joints, the leader's targets as the action and the block's pose.
"""
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node


def generate_launch_description():
    default_params = str(Path(get_package_share_directory("vqbet_ros")) / "config" / "so101_record.yaml")
    params = LaunchConfiguration("params_file")
    sim = Node(package="vqbet_ros", executable="so101_sim_node", name="so101_sim", output="screen",
               parameters=[params, {"seed": LaunchConfiguration("seed")}])
    teleop = Node(package="vqbet_ros", executable="so101_teleop_node", name="so101_teleop", output="screen",
                  parameters=[params, {"num_episodes": LaunchConfiguration("episodes"),
                                       "seed": LaunchConfiguration("seed")}])
    recorder = LifecycleNode(package="vqbet_ros", executable="recorder_node", name="recorder", namespace="",
                             output="screen",
                             parameters=[params, {"autostart": True, "root": LaunchConfiguration("root"),
                                                  "dataset_name": LaunchConfiguration("dataset_name")}])
    # The teleop exits after its last demo was saved: then everything stops (the recorder finishes its saves).
    done = RegisterEventHandler(OnProcessExit(target_action=teleop, on_exit=[
        EmitEvent(event=Shutdown(reason="the teleop has run every demo"))]))
    return LaunchDescription([
        DeclareLaunchArgument("episodes", default_value="50", description="demos to record"),
        DeclareLaunchArgument("seed", default_value="0",
                              description="demo n: block pose and the expert's variation from seed + n"),
        DeclareLaunchArgument("root", default_value="~/.cache/huggingface/lerobot",
                              description="folder holding datasets"),
        DeclareLaunchArgument("dataset_name", default_value="so101/pick_place",
                              description="dataset folder under root (an existing one is appended to)"),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="parameters of the three nodes (see config/so101_record.yaml)"),
        sim, teleop, recorder, done,
    ])
