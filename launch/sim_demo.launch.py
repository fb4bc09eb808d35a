"""PushT as a ROS 2 robot driven by a VQ-BeT policy: the sim node plus the policy node (managed, configured and
activated by this launch file).

    ros2 launch vqbet_ros sim_demo.launch.py                          # the shipped checkpoint, real time
    ros2 launch vqbet_ros sim_demo.launch.py checkpoint:=DIR mode:=fast

Episodes follow each other (`auto_reset`); watch `/pusht/status` [coverage, success, step, episode, done, ...]
and `/camera/image_raw`. Parameters: `config/sim_demo.yaml`. The checkpoint's camera, low-dim inputs and
joint names are wired to the sim's topics from its config.yaml (`vqbet_ros.pusht.wiring`). Without launch_ros,
`vqbet-demo` runs the same two nodes in one process and reports coverage and latency.
"""
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from vqbet_ros.launch_lifecycle import configure_then_activate


def _nodes(context):
    from vqbet_ros.config_io import load_yaml
    from vqbet_ros.model.checkpoint_search import find_checkpoint
    from vqbet_ros.model.config import VQBeTConfig
    from vqbet_ros.pusht.wiring import CHECKPOINT, SIM_NODE, wiring

    given = LaunchConfiguration("checkpoint").perform(context)
    # The shipped checkpoints are installed beside this file (setup.py data_files).
    shipped = Path(get_package_share_directory("vqbet_ros")) / "models"
    checkpoint = find_checkpoint(Path(given) if given else None, CHECKPOINT, option="checkpoint:=",
                                 models_dirs=[shipped])
    spec = load_yaml(VQBeTConfig, checkpoint / "config.yaml").spec
    params_file = LaunchConfiguration("params_file").perform(context)
    fast = LaunchConfiguration("mode").perform(context) == "fast"

    sim = Node(package="vqbet_ros", executable="pusht_sim_node", name=SIM_NODE, output="screen",
               parameters=[params_file, {"mode": "fast" if fast else "realtime"}])
    policy = LifecycleNode(package="vqbet_ros", executable="policy_node", name="policy_node", namespace="",
                           output="screen",
                           parameters=[params_file, {"checkpoint": str(checkpoint), "use_sim_time": fast,
                                                     **wiring(spec)}])
    return [sim, policy, *configure_then_activate(policy)]


def generate_launch_description():
    default_params = str(Path(get_package_share_directory("vqbet_ros")) / "config" / "sim_demo.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="checkpoint directory (empty: the shipped PushT checkpoint, installed in "
                                          "share/vqbet_ros/models)"),
        DeclareLaunchArgument("mode", default_value="realtime", choices=["realtime", "fast"],
                              description="realtime: 10 Hz wall clock; fast: the sim publishes /clock (lockstep)"),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="parameters of both nodes (see config/sim_demo.yaml)"),
        OpaqueFunction(function=_nodes),
    ])
