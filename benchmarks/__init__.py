"""Printed speed and memory figures (`python -m benchmarks`); not tests, nothing asserts."""
