"""Every memo cache in hwmodels is bounded: a long sweep must not grow memory without limit."""

from __future__ import annotations

import importlib
import pkgutil

import hwmodels


def _cached_functions() -> list[tuple[str, object]]:
    found = []
    for info in pkgutil.walk_packages(hwmodels.__path__, "hwmodels."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if callable(obj) and hasattr(obj, "cache_info") and obj.__module__ == info.name:
                found.append((f"{info.name}.{name}", obj))
    return found


def test_hwmodels_has_caches_to_check() -> None:
    names = [n for n, _ in _cached_functions()]
    assert "hwmodels.catalog.load_device" in names
    assert len(names) >= 8, names  # catalog, cluster, collectives, ops, step memo caches


def test_every_hwmodels_cache_has_a_bound() -> None:
    unbounded = [n for n, f in _cached_functions() if f.cache_info().maxsize is None]
    assert not unbounded, f"unbounded caches: {unbounded}"
