"""Launch the VQ-BeT policy as a managed node and walk it through configure -> activate.

    ros2 launch vqbet_ros policy.launch.py checkpoint:=/path/to/ckpt                      # dry run
    ros2 launch vqbet_ros policy.launch.py checkpoint:=/path/to/ckpt params_file:=my_arm.yaml \
        trajectory_topic:=/arm_controller/joint_trajectory enable_control:=true

Copy `config/policy.yaml` (every parameter documented there) for your arm: camera topics, joint-name map,
controller topic, safety limits. Launch arguments override the file. Configure loads and warms up the
checkpoint; the node is activated once it reaches `inactive` (set autostart:=false to drive the transitions
yourself with `ros2 lifecycle set /policy_node configure|activate`).
"""
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue

from vqbet_ros.launch_lifecycle import configure_then_activate

ARGUMENTS = {
    "checkpoint": ("", "checkpoint directory written by vqbet-train (required)"),
    "params_file": (None, "node parameters (see config/policy.yaml)"),
    "device": ("auto", "auto | cuda | cpu"),
    "namespace": ("", "namespace of the node (topics starting with ~/ or no slash move with it)"),
    "use_sim_time": ("false", "follow /clock (simulation, or a bag played with --clock)"),
    "enable_control": ("false", "false: dry run, chunks only on ~/preview; call ~/enable or set true"),
    "execution": ("ensemble", "ensemble (official: decide every step, average) | open_loop (LeRobot)"),
    "joint_states_topic": ("/joint_states", "sensor_msgs/JointState of the arm"),
    "trajectory_topic": ("~/joint_trajectory", "JointTrajectory chunks, e.g. /arm_controller/joint_trajectory"),
    "commands_topic": ("~/commands", "Float64MultiArray targets, e.g. /forward_position_controller/commands"),
    "publish_commands": ("false", "also stream Float64MultiArray targets at the control rate"),
    "autostart": ("true", "configure and activate on launch"),
}


def generate_launch_description():
    default_params = str(Path(get_package_share_directory("vqbet_ros")) / "config" / "policy.yaml")
    declared = [
        DeclareLaunchArgument(name, default_value=default_params if default is None else default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ]
    arg = LaunchConfiguration
    node = LifecycleNode(
        package="vqbet_ros",
        executable="policy_node",
        name="policy_node",
        namespace=arg("namespace"),
        output="screen",
        parameters=[
            arg("params_file"),
            {
                "checkpoint": arg("checkpoint"),
                "device": arg("device"),
                "execution": arg("execution"),
                "use_sim_time": ParameterValue(arg("use_sim_time"), value_type=bool),
                "enable_control": ParameterValue(arg("enable_control"), value_type=bool),
                "publish_commands": ParameterValue(arg("publish_commands"), value_type=bool),
                "joint_states_topic": arg("joint_states_topic"),
                "trajectory_topic": arg("trajectory_topic"),
                "commands_topic": arg("commands_topic"),
            },
        ],
    )
    return LaunchDescription([*declared, node, *configure_then_activate(node, condition=IfCondition(arg("autostart")))])
