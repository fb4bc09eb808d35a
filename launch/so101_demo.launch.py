"""The simulated SO-101 arm driven by a VQ-BeT policy: the sim node plus the policy node (managed, configured and
activated by this launch file).

    ros2 launch vqbet_ros so101_demo.launch.py                        # models/so101_pick, real time (30 Hz)
    ros2 launch vqbet_ros so101_demo.launch.py checkpoint:=DIR execution:=open_loop mode:=fast

Episodes follow each other (`auto_reset`); watch `/so101/status` [success, lifted, placed_pad, time_s, episode,
done, ...], `/scene_camera/image_raw` and `/wrist_camera/image_raw`. Parameters: `config/so101_demo.yaml`. The
checkpoint's joints, cameras and block pose are wired to the sim's topics by name from its config.yaml
(`vqbet_ros.so101.wiring`); in fast mode the sim's lockstep follows `execution` (`sim_lockstep`,
`policy_lockstep`: open loop, the sim also waits for the policy's per-tick target).
`vqbet-demo --robot so101` runs the same two nodes in one process and reports success and seam smoothness.
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
    from vqbet_ros.so101.wiring import CHECKPOINT, policy_lockstep, sim_lockstep, wiring

    given = LaunchConfiguration("checkpoint").perform(context)
    # The shipped checkpoints are installed beside this file (setup.py data_files).
    shipped = Path(get_package_share_directory("vqbet_ros")) / "models"
    checkpoint = find_checkpoint(Path(given) if given else None, CHECKPOINT, option="checkpoint:=",
                                 models_dirs=[shipped])
    spec = load_yaml(VQBeTConfig, checkpoint / "config.yaml").spec
    params_file = LaunchConfiguration("params_file").perform(context)
    fast = LaunchConfiguration("mode").perform(context) == "fast"
    execution = LaunchConfiguration("execution").perform(context)

    sim = Node(package="vqbet_ros", executable="so101_sim_node", name="so101_sim", output="screen",
               parameters=[params_file, {"mode": "fast" if fast else "realtime",
                                         **(sim_lockstep(execution) if fast else {})}])
    policy = LifecycleNode(package="vqbet_ros", executable="policy_node", name="policy_node", namespace="",
                           output="screen",
                           parameters=[params_file, {"checkpoint": str(checkpoint), "use_sim_time": fast,
                                                     "execution": execution, **wiring(spec),
                                                     **(policy_lockstep(execution) if fast else {})}])
    return [sim, policy, *configure_then_activate(policy)]


def generate_launch_description():
    default_params = str(Path(get_package_share_directory("vqbet_ros")) / "config" / "so101_demo.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="checkpoint directory (empty: the shipped SO-101 checkpoint, installed in "
                                          "share/vqbet_ros/models)"),
        DeclareLaunchArgument("execution", default_value="ensemble", choices=["ensemble", "open_loop"],
                              description="ensemble: decide every step, average overlapping chunks; open_loop: "
                                          "execute each chunk to its end"),
        DeclareLaunchArgument("mode", default_value="realtime", choices=["realtime", "fast"],
                              description="realtime: 30 Hz wall clock; fast: the sim publishes /clock (lockstep)"),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="parameters of both nodes (see config/so101_demo.yaml)"),
        OpaqueFunction(function=_nodes),
    ])
