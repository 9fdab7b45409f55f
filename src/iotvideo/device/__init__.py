"""The device SDK and the simulated camera."""
