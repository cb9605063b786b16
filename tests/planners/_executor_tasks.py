"""Module-level task functions for executor tests (process pools and Ray pickle them)."""

from __future__ import annotations

import os

import numpy as np


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x


def die_on_two(x: int) -> int:
    if x == 2:
        os._exit(13)  # a hard worker crash (segfault / OOM kill stand-in)
    return x


def pid(_: int) -> int:
    return os.getpid()


def draw(task: tuple[str, int]) -> float:
    _, seed = task
    return float(np.random.default_rng(seed).random())


def evaluate_toy(mapping: dict) -> dict:
    """A toy scenario: time = work / (devices * speed); fails when devices is 0."""
    n = mapping["cluster"]["num_devices"]
    if n == 0:
        raise ZeroDivisionError("no devices")
    rng = np.random.default_rng(mapping.get("seed", 0))
    noise = 1.0 + 0.01 * rng.standard_normal() if "seed" in mapping else 1.0
    t = mapping["work"] / (n * mapping["speed"]["value"]) * noise
    return {"time_s": t, "breakdown": {"compute_s": t}, "stages": [1, 2]}


def five_seconds(dp: int) -> float:
    """A constant iteration time (a picklable stand-in for the iteration simulator)."""
    return 5.0
