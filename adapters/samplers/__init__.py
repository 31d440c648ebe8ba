"""Model-based samplers for sweeps."""
