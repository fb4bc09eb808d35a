"""Launch the recorder as a managed node that configures and activates itself.

    ros2 launch vqbet_ros recorder.launch.py params_file:=/path/to/my_recorder.yaml

Copy `config/recorder.yaml` (every parameter documented there), set dataset_name, task, cameras and joints.
Then record with `vqbet-record-keys` (or the ~/start_episode, ~/stop_episode, ~/discard_episode services).
"""
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode


def generate_launch_description():
    default_params = str(Path(get_package_share_directory("vqbet_ros")) / "config" / "recorder.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="recorder parameters (see config/recorder.yaml)"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="follow /clock (simulation, or a bag played with --clock)"),
        LifecycleNode(
            package="vqbet_ros",
            executable="recorder_node",
            name="recorder",
            namespace="",
            output="screen",
            parameters=[
                LaunchConfiguration("params_file"),
                # The node configures and activates itself, which works on every distro without a lifecycle
                # manager; `ros2 lifecycle set /recorder deactivate` etc. still work.
                {"autostart": True, "use_sim_time": LaunchConfiguration("use_sim_time")},
            ],
        ),
    ])
