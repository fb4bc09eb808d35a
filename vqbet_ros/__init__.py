"""vqbet_ros: VQ-BeT policies for ROS 2 (record teleop demos, train, deploy)."""
