"""Held-out errors of a fitted profile against the catalog defaults, and the gate on writing it.

Per-layer operators (GEMMs, elementwise kernels) are held out one model at a time: the profile is
fitted on the other models' rows and predicts the held-out model's rows. Tables of one shape
family (collectives by group size, attention of one head shape) are held out by size instead:
every other distinct size (message bytes; KV length) is predicted from a fit on the rest, then
the other way round. Predictions go through the real cost functions (hwmodels.ops.gemm_time,
memory_time(kind=), attention_varlen_time, attention_decode_time,
hwmodels.collectives.collective_time on a one-node cluster of the device), once with the fold's
profile and once with the catalog defaults. Errors are |predicted - measured| / measured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from calibration.errors import ProfileRejectedError
from hwmodels import ops
from hwmodels.catalog import load_device
from hwmodels.cluster import build_cluster
from hwmodels.collectives import collective_time
from hwmodels.profile import DeviceProfile, profile_from_json
from hwmodels.specs import DeviceSpec

MODEL_FAMILIES = ("gemm", "elementwise")
Fitter = Callable[[Mapping[str, Any]], dict[str, Any]]


def _profile(data: Mapping[str, Any], device: DeviceSpec) -> DeviceProfile:
    return ops.resolve_profile(device, profile_from_json(data, file="<held-out fit>"))


def _predict(device: DeviceSpec, family: str, r: Mapping[str, Any],
             prof: DeviceProfile | str, cluster: Any) -> float:
    """Predicted seconds of record `r` of `family` under `prof` (a profile or 'defaults')."""
    if family == "gemm":
        return ops.gemm_time(device, r["m"], r["n"], r["k"], r["dtype"], profile=prof)
    if family == "elementwise":
        return ops.memory_time(device, r["bytes"], profile=prof, kind=r["kind"])
    if family == "attention_prefill":
        return ops.attention_varlen_time(
            device, query_key_pairs=r["pairs"], q_tokens=r["batch"] * r["q_len"],
            kv_tokens=r["batch"] * r["kv_len"], num_heads=r["heads"],
            num_kv_heads=r["kv_heads"], head_dim=r["head_dim"], dtype=r["dtype"], profile=prof)
    if family == "attention_decode":
        return ops.attention_decode_time(
            device, num_seqs=r["batch"], total_context=r["context"], num_heads=r["heads"],
            num_kv_heads=r["kv_heads"], head_dim=r["head_dim"], kv_dtype=r["dtype"],
            profile=prof)
    if family == "collectives":
        # CATALOG_DEFAULTS: the analytic alpha-beta model (None would be the bundled profile)
        return collective_time(cluster, range(int(r["world"])), r["op"], r["bytes"],
                               profile=prof).time_s
    raise ValueError(family)


def _operator(family: str, r: Mapping[str, Any]) -> str:
    """Row of the per-operator table a record belongs to."""
    if family == "gemm":
        return f"gemm.{r['op']}"
    if family == "elementwise":
        return f"elementwise.{r['kind']}.{r['op']}"
    if family == "collectives":
        return f"collectives.{r['op']}.{int(r['world'])}"
    return family


def _family_key(family: str, r: Mapping[str, Any]) -> str:
    """Family the gate judges a record in (elementwise kinds and collective ops separately)."""
    if family == "elementwise":
        return f"elementwise.{r['kind']}"
    if family == "collectives":
        return f"collectives.{r['op']}"
    return family


def _interleaved(records: list[dict[str, Any]], key: str, group: tuple[str, ...] = ()
                 ) -> list[tuple[list[int], list[int]]]:
    """Two folds: within each group, distinct values of `key` alternate between the folds."""
    fold_of = []
    sizes: dict[tuple, list[float]] = {}
    for r in records:
        sizes.setdefault(tuple(r[g] for g in group), []).append(r[key])
    order = {g: {v: i % 2 for i, v in enumerate(sorted(set(vs)))} for g, vs in sizes.items()}
    for r in records:
        fold_of.append(order[tuple(r[g] for g in group)][r[key]])
    idx = np.arange(len(records))
    fold = np.array(fold_of)
    return [(idx[fold != f].tolist(), idx[fold == f].tolist()) for f in (0, 1)]


def _stats(errs: list[float]) -> dict[str, float]:
    a = np.asarray(errs)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90))}


def heldout_rows(raw: Mapping[str, Any], fitter: Fitter, device_name: str
                 ) -> list[dict[str, Any]]:
    """One row per held-out measurement: family, operator, fold, measured_s and the seconds
    predicted by the fold's profile (predicted_s) and by the catalog defaults (defaults_s).

    fitter(raw subset) -> profile dict (the same fit the written profile comes from)."""
    device = load_device(device_name)
    cluster = build_cluster(device, device.devices_per_node or 8)
    defaults = ops.CATALOG_DEFAULTS
    rows: list[dict[str, Any]] = []

    def score(fold: str, family: str, recs: list[dict[str, Any]], prof: DeviceProfile) -> None:
        for r in recs:
            rows.append({"family": _family_key(family, r), "operator": _operator(family, r),
                         "fold": fold, "model": r.get("model", ""),
                         "measured_s": r["median_s"],
                         "predicted_s": _predict(device, family, r, prof, cluster),
                         "defaults_s": _predict(device, family, r, defaults, cluster)})

    models = sorted({r["model"] for r in raw["gemm"]})
    folds: list[tuple[str, dict[str, Any], dict[str, list[dict[str, Any]]]]] = []
    for model in models:
        train = {k: v for k, v in raw.items() if k not in MODEL_FAMILIES}
        test = {}
        for fam in MODEL_FAMILIES:
            train[fam] = [r for r in raw[fam] if r["model"] != model]
            test[fam] = [r for r in raw[fam] if r["model"] == model]
        for fam in ("collectives", "attention_prefill", "attention_decode"):
            train.pop(fam, None)  # not scored in this fold; fitted in their own folds
        folds.append((f"model {model}", train, test))
    by_size = {"collectives": ("bytes", ("op", "world")),
               "attention_prefill": ("kv_cache", ()), "attention_decode": ("kv_cache", ())}
    for fam, (key, group) in by_size.items():
        recs = raw.get(fam) or []
        if not recs:
            continue
        for i, (tr, te) in enumerate(_interleaved(recs, key, group)):
            train = {k: v for k, v in raw.items() if k not in by_size}
            train[fam] = [recs[j] for j in tr]
            folds.append((f"{fam} fold {i}", train, {fam: [recs[j] for j in te]}))
    for name, train, test in folds:
        prof = _profile(fitter(train), device)
        for fam, recs in test.items():
            score(name, fam, recs, prof)
    return rows


def heldout_errors(raw: Mapping[str, Any], fitter: Fitter, device_name: str
                   ) -> dict[str, Any]:
    """Per-operator and per-family held-out median/p90 |error| of the profile and defaults
    (aggregated from heldout_rows)."""
    models = sorted({r["model"] for r in raw["gemm"]})
    errs: dict[tuple[str, str, str], list[float]] = {}  # (family key, operator, source) -> errs
    for row in heldout_rows(raw, fitter, device_name):
        t = row["measured_s"]
        for src, col in (("profile", "predicted_s"), ("defaults", "defaults_s")):
            errs.setdefault((row["family"], row["operator"], src), []).append(
                abs(row[col] - t) / t)

    operators: dict[str, Any] = {}
    families: dict[str, Any] = {}
    pooled: dict[str, list[float]] = {"profile": [], "defaults": []}
    fam_errs: dict[tuple[str, str], list[float]] = {}
    for (fam, op, src), e in sorted(errs.items()):
        operators.setdefault(op, {"n": len(e)})[src] = _stats(e)
        fam_errs.setdefault((fam, src), []).extend(e)
        pooled[src].extend(e)
    for (fam, src), e in sorted(fam_errs.items()):
        families.setdefault(fam, {"n": len(e)})[src] = _stats(e)
    return {
        "method": "leave-one-model-out for per-layer operators (fit on the other models); "
                  "collectives (by op and group size) and attention (by KV length): two "
                  "folds of alternating distinct sizes; predicted through hwmodels.ops / "
                  "hwmodels.collectives with the fold's profile and with the catalog "
                  "defaults; |predicted - measured| / measured",
        "models": models,
        "overall": {"n": len(pooled["profile"]),
                    **{src: _stats(e) for src, e in pooled.items()}},
        "families": families,
        "operators": operators,
    }


def gate(heldout: Mapping[str, Any]) -> list[str]:
    """Reasons the profile loses to the defaults (empty: it beats them overall and in every
    family it has), comparing held-out median errors."""
    bad = []
    rows = [("overall", heldout["overall"]), *sorted(heldout["families"].items())]
    for fam, row in rows:
        p, d = row["profile"]["median"], row["defaults"]["median"]
        if not p < d:
            bad.append(f"{fam}: held-out median error {p:.1%} (profile) vs {d:.1%} (defaults)")
    return bad


def check_or_reject(heldout: dict[str, Any], *, allow_worse: bool) -> None:
    """Raise ProfileRejectedError unless the profile beats the defaults (or allow_worse, which
    records the reasons under heldout['rejected'])."""
    bad = gate(heldout)
    if not bad:
        return
    if allow_worse:
        heldout["rejected"] = bad
        return
    raise ProfileRejectedError("profile not written: it does not beat the catalog defaults on "
                               "its held-out shapes: " + "; ".join(bad)
                               + " (--allow-worse writes it anyway)", heldout=heldout)
