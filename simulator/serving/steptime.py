"""Step durations of one replica: exact for steps with prefill work, and for decode-only steps a
piecewise-linear curve through exact knots whose sums over runs of steps are closed-form.

A decode-only step of n sequences reading C context tokens costs T_n(C). Along a run of
homogeneous steps C grows by n per step, so the run's duration is a sum of T_n over an
arithmetic progression. T_n is evaluated exactly (the hwmodels StepCostModel) at knots
C = n * (1 + g*m) and linear in between; a run's sum is then a few closed-form segment sums, and
a single step (k = 1) goes through the very same formula, so advancing k steps at once equals
k single steps up to float rounding. With g = knot_tokens per sequence (default 16) the curve is
within 1e-3 of the exact step time (5e-4 worst seen for Llama-2-70B TP8) (tests/simulator/test_serving_steptime.py).
"""

from __future__ import annotations

from collections.abc import Callable

# (prefill_tokens, prefill_attn_units, decode_seqs, decode_context_sum, prefill_seqs,
#  prefill_cached_sum) -> seconds; the replica's step including pipeline effects.
StepCost = Callable[[float, float, int, float, int, float], float]
DEFAULT_KNOT_TOKENS = 16


def step_cost_from_model(cost_model: object, *, pp: int = 1) -> StepCost:
    """Wrap hwmodels.step.StepCostModel: one lane of a PP replica issues a step every
    max(time_s, pp * stage_s) (its micro-batch must pass every stage, and pp lanes share each
    stage), which is time_s for pp = 1."""
    time_s = cost_model.time_s  # type: ignore[attr-defined]
    if pp == 1:
        def cost(pt: float, units: float, n: int, ctx: float, ps: int, cached: float) -> float:
            return time_s(pt, units, n, ctx, prefill_seqs=ps, prefill_cached_sum=cached)
        return cost
    breakdown = cost_model.breakdown  # type: ignore[attr-defined]
    memo: dict[tuple[float, ...], float] = {}

    def cost_pp(pt: float, units: float, n: int, ctx: float, ps: int, cached: float) -> float:
        key = (pt, units, n, ctx, ps, cached)
        hit = memo.get(key)
        if hit is None:
            b = breakdown(pt, units, n, ctx, prefill_seqs=ps, prefill_cached_sum=cached)
            hit = memo[key] = max(b["time_s"], pp * b["stage_s"])
            if len(memo) > 1 << 18:
                memo.clear()
        return hit
    return cost_pp


class StepTimer:
    """Step durations for one lane (see the module docstring)."""

    __slots__ = ("cost", "g", "_knots", "slow", "dscale")

    def __init__(self, cost: StepCost, *, knot_tokens: int = DEFAULT_KNOT_TOKENS) -> None:
        if knot_tokens < 1:
            raise ValueError("knot_tokens must be >= 1")
        self.cost = cost
        self.g = knot_tokens
        self._knots: dict[tuple[int, int], float] = {}
        self.slow = 1.0  # step-time multiplier (straggler / slower group)
        self.dscale = 1.0  # decode multiplier = slow x the power cap's decode slowdown

    def step_s(self, prefill_tokens: float, prefill_attn_units: float, decode_seqs: int,
               decode_context_sum: float, prefill_seqs: int, prefill_cached_sum: float) -> float:
        """A step with prefill work: exact."""
        if prefill_tokens == 0:
            return self.decode_sum(decode_seqs, int(decode_context_sum), 1)
        return self.slow * self.cost(prefill_tokens, prefill_attn_units, decode_seqs,
                                     decode_context_sum, prefill_seqs, prefill_cached_sum)

    def _knot(self, n: int, m: int) -> float:
        value = self._knots.get((n, m))
        if value is None:
            value = self._knots[(n, m)] = self.cost(0, 0, n, n * (1 + self.g * m), 0, 0)
        return value

    def decode_sum(self, n: int, c0: int, k: int) -> float:
        """Seconds of k decode-only steps of n sequences reading c0, c0+n, ... context tokens."""
        g, width = self.g, self.g * n
        total = 0.0
        j = 0
        while j < k:
            c = c0 + j * n
            m = (c - n) // width
            base = n + width * m  # knot C_m
            j_end = min(k, -(-(base + width - c0) // n))  # first j with C >= C_{m+1}
            cnt = j_end - j
            y0 = self._knot(n, m)
            y1 = self._knot(n, m + 1)
            sum_c = cnt * c0 + n * (j + j_end - 1) * cnt // 2
            total += cnt * y0 + (y1 - y0) * (sum_c - cnt * base) / (g * n)
            j = j_end
        return total * self.dscale

    def decode_steps_until(self, n: int, c0: int, k: int, elapsed_s: float) -> int:
        """Smallest j in [1, k] whose first j steps take >= elapsed_s (the step boundary at or
        after an interruption); k if none does."""
        lo, hi = 1, k
        while lo < hi:
            mid = (lo + hi) // 2
            if self.decode_sum(n, c0, mid) >= elapsed_s:
                hi = mid
            else:
                lo = mid + 1
        return lo
