"""rclpy nodes: thin adapters between ROS 2 messages and the ROS-free runtime."""
import sys

# rclpy's MultiThreadedExecutor re-polls an entity that is ready but not yet taken by its worker thread in a
# loop that holds the GIL, so each callback waits for CPython's GIL switch interval (5 ms by default) before a
# worker may run it. Measured on an idle 2-core machine: a 30 Hz publisher beside the recorder node fell to
# 1.5-17 Hz; with a 0.2 ms interval it kept 30 Hz. Every node process imports this package first.
if sys.getswitchinterval() > 2e-4:
    sys.setswitchinterval(2e-4)
