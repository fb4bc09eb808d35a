"""What every launch file with a managed (lifecycle) node needs: configure it at launch, activate it once configured.

Activation follows only a `configuring -> inactive` transition, never a deactivate: a node an operator
deactivated (`ros2 lifecycle set ... deactivate`) stays inactive. Launch layer (`docs/design.md`).
"""
from __future__ import annotations

from launch.actions import EmitEvent, RegisterEventHandler
from launch.events import matches_action
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition


def configure_then_activate(node: LifecycleNode, condition=None) -> list:
    """The actions that bring `node` to active (put them after the node in the launch description); with a
    `condition`, only when it holds."""
    def change(transition_id: int, **kwargs) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                           transition_id=transition_id), **kwargs)

    activate_when_configured = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
        entities=[change(Transition.TRANSITION_ACTIVATE)]), condition=condition)
    return [activate_when_configured, change(Transition.TRANSITION_CONFIGURE, condition=condition)]
