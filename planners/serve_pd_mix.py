"""Mixed prefill/decode pairs for `plan serve`: a prefill pool of one (device, TP) and a decode
pool of another, each checked against its own device's memory, joined by the slower of the two
devices' scale-out NICs (pools of different device types never share an NVLink node).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from hwmodels.catalog import load_device
from hwmodels.cluster import default_nic
from hwmodels.errors import ConfigError
from hwmodels.layers import check_tp
from hwmodels.specs import ModelSpec
from planners.serve_space import (
    DEFAULT_MAX_BATCH_TOKENS,
    Pruned,
    ServeCandidate,
    feasibility,
)
from simulator.serving.transfer import link_cost


def _names(values: Sequence[str] | None, key: str) -> tuple[str, ...]:
    """Catalog names (canonical, deduplicated); an unknown device is a ConfigError on `key`."""
    out = []
    for v in values or ():
        try:
            out.append(load_device(str(v).strip()).name)
        except ConfigError as err:
            raise ConfigError(err.message, key=key,
                              allowed=err.allowed) from None
    return tuple(dict.fromkeys(out))


def _tps(values: Sequence[int] | None, key: str) -> tuple[int, ...] | None:
    if values is None:
        return None
    out = tuple(values)
    if not out or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in out):
        raise ConfigError(f"must be a non-empty list of integers >= 1, got {values!r}", key=key)
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolMix:
    """--prefill-devices / --decode-devices / --prefill-tp / --decode-tp: the devices and TP
    degrees of each pool of a mixed pair (TP unset: the search's --tp list)."""

    prefill_devices: tuple[str, ...] = ()
    decode_devices: tuple[str, ...] = ()
    prefill_tp: tuple[int, ...] | None = None
    decode_tp: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefill_devices",
                           _names(self.prefill_devices, "--prefill-devices"))
        object.__setattr__(self, "decode_devices",
                           _names(self.decode_devices, "--decode-devices"))
        object.__setattr__(self, "prefill_tp", _tps(self.prefill_tp, "--prefill-tp"))
        object.__setattr__(self, "decode_tp", _tps(self.decode_tp, "--decode-tp"))
        if bool(self.prefill_devices) != bool(self.decode_devices):
            key = "--decode-devices" if self.decode_devices else "--prefill-devices"
            other = "--prefill-devices" if self.decode_devices else "--decode-devices"
            raise ConfigError(f"mixed prefill/decode pools need {other} too", key=key,
                              allowed="both --prefill-devices and --decode-devices")
        if not self.prefill_devices and (self.prefill_tp or self.decode_tp):
            key = "--prefill-tp" if self.prefill_tp else "--decode-tp"
            raise ConfigError("TP of a pool needs the pools' devices", key=key,
                              allowed="with --prefill-devices and --decode-devices")

    @property
    def enabled(self) -> bool:
        return bool(self.prefill_devices)

    def devices(self) -> tuple[str, ...]:
        """Every device either pool may use (for prices)."""
        return tuple(dict.fromkeys((*self.prefill_devices, *self.decode_devices)))


def pair_link(prefill_device: str, decode_device: str) -> str:
    """The link a mixed pair's KV crosses: the slower of the two devices' default NICs (KV
    leaves one NIC and enters the other); the catalog's default_inter_node per device."""
    links = []
    for name in dict.fromkeys((prefill_device, decode_device)):
        dev = load_device(name)
        nic = default_nic(dev)
        cost = link_cost(dev, intra_node=nic, inter_node=None, cross_node=False)
        links.append((cost.bandwidth_Bps, nic))
    return min(links)[1]


def _pool_reason(why: str, pool: str, device: str, tp: int) -> str:
    """'memory: ...' -> 'memory: decode pool a100-80gb tp4: ...' (the category stays first)."""
    head, _, rest = why.partition(": ")
    if not rest:
        return f"{pool} pool {device} tp{tp}: {why}"
    return f"{head}: {pool} pool {device} tp{tp}: {rest}"


def enumerate_mixed(model: ModelSpec, mix: PoolMix, *, tp: Sequence[int], pp: Sequence[int],
                    ratios: Sequence[tuple[int, int]], max_num_seqs: Sequence[int],
                    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS, dtype: str = "bf16",
                    min_kv_tokens: int = 1, gpu_memory_utilization: float = 0.9
                    ) -> tuple[list[ServeCandidate], list[Pruned]]:
    """(prefill device, TP) x (decode device, TP) x P:D ratio x max_num_seqs, each pool
    checked on its own device; pairs of one device and TP on both sides are left to the
    same-device search. Both pools use vLLM's prefill-first scheduler, as there."""
    if not mix.enabled:
        return [], []
    if not ratios:
        raise ConfigError("mixed pools need prefill:decode ratios", key="--disagg",
                          allowed="e.g. 1:1,1:2")
    for key, given in (("--prefill-tp", mix.prefill_tp), ("--decode-tp", mix.decode_tp)):
        for t in given or ():  # a pool TP asked for by name must split the model's heads
            try:
                check_tp(model, t)
            except ConfigError as err:
                raise ConfigError(f"TP {t} cannot serve {model.name}: {err.message}",
                                  key=key) from None
    ptps, dtps = mix.prefill_tp or tuple(tp), mix.decode_tp or tuple(tp)
    keep: list[ServeCandidate] = []
    pruned: list[Pruned] = []
    why_of: dict[tuple[str, int, int], str] = {}

    def why(device: str, t: int, p: int) -> str:
        if (device, t, p) not in why_of:
            why_of[(device, t, p)] = feasibility(
                model, load_device(device), t, p, dtype=dtype, min_kv_tokens=min_kv_tokens,
                gpu_memory_utilization=gpu_memory_utilization)
        return why_of[(device, t, p)]

    for pdev, pt, ddev, dt, p in itertools.product(mix.prefill_devices, ptps,
                                                   mix.decode_devices, dtps, pp):
        if (pdev, pt) == (ddev, dt):
            continue
        shapes = [ServeCandidate(device=pdev, tp=pt, pp=p, scheduler="vllm",
                                 token_budget=max_batch_tokens, max_num_seqs=n,
                                 prefill_replicas=pr, decode_replicas=dr, decode_device=ddev,
                                 decode_tp=dt)
                  for (pr, dr), n in itertools.product(ratios, max_num_seqs)]
        reason = ""
        if w := why(pdev, pt, p):
            reason = _pool_reason(w, "prefill", pdev, pt)
        elif w := why(ddev, dt, p):
            reason = _pool_reason(w, "decode", ddev, dt)
        if reason:
            pruned += [Pruned(candidate=c, reason=reason) for c in shapes]
        else:
            keep += shapes
    return keep, pruned
