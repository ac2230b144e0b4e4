"""The AWX rollout workflow (awx/): the generator run as docs/awx.md says."""
