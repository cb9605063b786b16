"""The gate of a local calibration: a profile is written only if it beats the defaults on shapes
it was not fitted on.

Every third size of each op family (sorted by work, chosen deterministically: index % 3 == 1)
is held out; the rest go through calibration.fit.fit_profile; each held-out point, and the
validation steps (never fitted), is predicted by hwmodels with that profile and with the
catalog defaults. 'Defaults' on a catalog device are hwmodels.ops.default_profile of its catalog
entry; the CPU has no catalog entry, so there they are the run's measured peaks (and measured
kernel overhead) with the catalog's default curve shapes and default plateau efficiencies
(hwmodels.specs.DeviceSpec: GEMM 0.75, memory 0.85, attention 0.55). The decision compares the
median |relative error| over all held-out items; per-family medians are reported beside it
in the block format the importers write (profile["heldout"]).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from typing import Any

from calibration.errors import ProfileRejectedError
from hwmodels import ops
from hwmodels.profile import DeviceProfile, profile_from_json
from hwmodels.specs import DeviceSpec

HOLDOUT_EVERY = 3  # hold out one size in three per family
HOLDOUT_INDEX = 1  # ... the second of each three (keeps the smallest and largest in the fit)
# Families held out by shape (the others are fitted on everything: one number, or tables).
HELD_FAMILIES = ("gemm", "memory", "elementwise", "attention_prefill", "attention_decode")

Predict = Callable[[DeviceProfile], float]


def _work(r: Mapping[str, Any]) -> float:
    return float(r.get("flops") or r.get("bytes") or 0.0)


def _group(family: str, r: Mapping[str, Any]) -> str:
    """The sub-family a record is fitted (and reported) in."""
    if family == "gemm":
        return f"gemm.{r['dtype']}"
    if family == "elementwise":
        return f"elementwise.{r['kind']}"
    return family


def split_raw(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """(raw to fit on, {family: held-out records}): per sub-family, sorted by work, every
    HOLDOUT_EVERY-th record from HOLDOUT_INDEX is held out (families with fewer than
    HOLDOUT_EVERY records are kept whole)."""
    train: dict[str, Any] = dict(raw)
    held: dict[str, list[dict[str, Any]]] = {}
    for family in HELD_FAMILIES:
        records = list(raw.get(family) or [])
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            groups.setdefault(_group(family, r), []).append(r)
        keep: list[dict[str, Any]] = []
        for name, recs in sorted(groups.items()):
            recs = sorted(recs, key=lambda r: (_work(r), sorted(
                (k, v) for k, v in r.items() if isinstance(v, (int, float, str)))))
            if len(recs) < HOLDOUT_EVERY:
                keep += recs
                continue
            for i, r in enumerate(recs):
                (held.setdefault(name, []) if i % HOLDOUT_EVERY == HOLDOUT_INDEX
                 else keep).append(r)
        if family in raw:
            train[family] = keep
    return train, held


def record_predictor(family: str, r: Mapping[str, Any], dev: DeviceSpec) -> Predict:
    """hwmodels' seconds for one benchmark record as a function of the profile."""
    if family.startswith("gemm"):
        return lambda p: ops.gemm_time(dev, r["m"], r["n"], r["k"], r["dtype"], p)
    if family == "memory":
        return lambda p: ops.memory_time(dev, r["bytes"], p)
    if family.startswith("elementwise"):
        return lambda p: ops.memory_time(dev, r["bytes"], p, kind=r["kind"])
    if family == "attention_prefill":
        return lambda p: ops.attention_prefill_time(
            dev, batch=r["batch"], q_len=r["seq"], kv_len=r["seq"], num_heads=r["heads"],
            num_kv_heads=r["heads"], head_dim=r["head_dim"], dtype=r["dtype"], profile=p)
    if family == "attention_decode":
        return lambda p: ops.attention_decode_time(
            dev, num_seqs=r["batch"], total_context=r["batch"] * r["context"],
            num_heads=r["heads"], num_kv_heads=r["kv_heads"], head_dim=r["head_dim"],
            kv_dtype=r["dtype"], profile=p)
    raise ValueError(f"no predictor for family {family!r}")


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def compare(items: list[tuple[str, float, Predict]], fitted: DeviceProfile,
            defaults: DeviceProfile) -> dict[str, Any]:
    """The held-out block from (family, measured seconds, predictor) items."""
    fam: dict[str, dict[str, list[float]]] = {}
    for name, measured, predict in items:
        slot = fam.setdefault(name, {"profile": [], "defaults": []})
        slot["profile"].append(abs(predict(fitted) - measured) / measured)
        slot["defaults"].append(abs(predict(defaults) - measured) / measured)
    families = {name: {"points": len(v["profile"]),
                       "profile_median_abs_err": _median(v["profile"]),
                       "defaults_median_abs_err": _median(v["defaults"])}
                for name, v in sorted(fam.items())}
    every_p = [e for v in fam.values() for e in v["profile"]]
    every_d = [e for v in fam.values() for e in v["defaults"]]
    med_p, med_d = _median(every_p), _median(every_d)
    return {"points": len(every_p), "profile_median_abs_err": med_p,
            "defaults_median_abs_err": med_d,
            "passed": med_p is not None and med_d is not None and med_p < med_d,
            "families": families}


def heldout_block(raw: Mapping[str, Any], fit: Callable[[Mapping[str, Any]], dict[str, Any]],
                  dev_for: Callable[[Mapping[str, Any]], DeviceSpec],
                  steps: list[tuple[str, float, Callable[[DeviceSpec, DeviceProfile], float]]],
                  ) -> dict[str, Any]:
    """Fit on the non-held-out records (`fit(raw) -> profile dict`), then compare profile and
    defaults on the held-out records and the validation `steps` ((name, measured s,
    predict(device, profile) -> s)). `dev_for(profile dict)` gives the DeviceSpec the profile
    is evaluated on (catalog entry, or the CPU pseudo-device of its measured peaks)."""
    train, held = split_raw(raw)
    data = fit(train)
    dev = dev_for(data)
    fitted = profile_from_json(data, file="<held-out fit>").complete_with(
        ops.default_profile(dev))
    defaults = ops.default_profile(dev)
    items: list[tuple[str, float, Predict]] = []
    for name, records in held.items():
        family = name.split(".")[0]
        for r in records:
            items.append((name, float(r["median_s"]), record_predictor(family, r, dev)))
    for name, measured, predict in steps:
        items.append((f"step.{name}", measured,
                      lambda p, predict=predict: predict(dev, p)))
    block = compare(items, fitted, defaults)
    block["method"] = (f"every {HOLDOUT_EVERY}rd size per family held out (sorted by work, "
                       f"index % {HOLDOUT_EVERY} == {HOLDOUT_INDEX}) plus the validation "
                       "steps; profile fitted on the rest")
    block["defaults"] = ("measured peaks with the catalog's default curve shapes and "
                         "efficiencies (no catalog entry for the CPU)" if dev.name == "cpu"
                         else f"hwmodels catalog defaults of {dev.name}")
    return block


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def enforce(block: Mapping[str, Any], *, allow_worse: bool) -> None:
    """ProfileRejectedError unless the profile beat the defaults (or allow_worse)."""
    if block.get("passed") or allow_worse:
        return
    p, d = block.get("profile_median_abs_err"), block.get("defaults_median_abs_err")
    raise ProfileRejectedError(
        f"fitted profile does not beat the defaults on its held-out shapes "
        f"(median |error| {_pct(p)} vs defaults {_pct(d)} over {block.get('points', 0)} points); "
        "nothing written (--allow-worse writes it anyway)", heldout=dict(block))



def format_block(block: Mapping[str, Any]) -> list[str]:
    """Fixed-width lines: per family the held-out median |error| of profile and defaults."""
    def fmt(v: float | None) -> str:
        return f"{_pct(v):>7}"

    head = f"{'held out':<24} {'points':>6} {'profile':>7} {'defaults':>8}"
    lines = [head, "-" * len(head)]
    for name, f in block.get("families", {}).items():
        lines.append(f"{name:<24} {f['points']:>6} {fmt(f['profile_median_abs_err'])} "
                     f"{fmt(f['defaults_median_abs_err']):>8}")
    verdict = "profile beats defaults" if block.get("passed") else "profile does NOT beat defaults"
    lines.append(f"{'all':<24} {block.get('points', 0):>6} "
                 f"{fmt(block.get('profile_median_abs_err'))} "
                 f"{fmt(block.get('defaults_median_abs_err')):>8}  ({verdict})")
    return lines
