"""Analytical hardware and model cost models plus the YAML catalog (no SimPy, no randomness)."""
