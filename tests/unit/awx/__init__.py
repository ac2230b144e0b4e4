"""The AWX rollout workflow (awx/): its order and settings, and its generator."""
