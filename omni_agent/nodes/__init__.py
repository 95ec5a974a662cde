"""Thin rclpy node wrappers over the pure-Python core.

Each module here declares its parameters, topics and QoS, converts messages
to and from core types, and delegates the work to omni_agent.audio,
omni_agent.vision, omni_agent.model or omni_agent.planning.
"""
