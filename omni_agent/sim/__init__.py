"""Simulation core: the home world description, the MuJoCo simulator,
navigation and manipulation controllers, and the Gazebo world generator."""
