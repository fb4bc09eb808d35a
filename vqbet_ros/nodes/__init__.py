"""rclpy nodes: thin adapters between ROS 2 messages and the ROS-free runtime. Every node process starts
through `entry.run_node`."""
