"""The GPU-mix integer program (Mélange's cost-aware bin packing with request slicing).

Given bucket request rates r[w, b] (per window w; one window for a static plan), the rate
c[b, t] one instance of type t sustains within the SLO when it serves only bucket b, and the
price p[t] of an instance per hour:

    minimize    sum_t p[t] n[t]
    subject to  sum_t x[w, b, t] = 1                         every (w, b) with r[w, b] > 0
                sum_b x[w, b, t] r[w, b] / c[b, t] <= u n[t]  every (w, t)
                n[t] integer >= 0,  0 <= x[w, b, t] <= 1,  x = 0 where c[b, t] = 0

x is the share of bucket b sent to type t ("slicing": a bucket may split across types); a
type's load is the sum of the fractions of an instance each share occupies, which is exact
for an instance serving one bucket and the usual linear mixing assumption otherwise (Mélange,
Griggs et al. 2024, Eq. 1-3). u <= 1 is the utilization ceiling. Several windows with one n
give the cheapest fleet that serves every window (provisioning for the peak).
Solvers: 'cbc' (PuLP's bundled CBC) or 'highs' (scipy.optimize.milp, HiGHS bundled with SciPy).
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError, InfeasibleError, UnknownNameError

# Relative slack on the load constraints of the brute-force feasibility LP, so float round-off
# in an exactly-full instance does not read as infeasible.
FEASIBILITY_SLACK = 1e-9


class Solver(StrEnum):
    CBC = "cbc"
    HIGHS = "highs"


@dataclass(frozen=True, slots=True, kw_only=True)
class MixSolution:
    """Instance counts per type, the bucket split, its cost and the solve time."""

    counts: tuple[int, ...]  # n[t]
    fractions: np.ndarray  # x[w, b, t]
    load: np.ndarray  # [w, t] instances' worth of work per type and window
    cost_usd_per_hour: float
    solve_time_s: float
    solver: str

    def utilization(self, window: int | None = None) -> np.ndarray:
        """Load / instances per type (the peak window's when window is None); 0 where n=0."""
        load = self.load.max(axis=0) if window is None else self.load[window]
        n = np.asarray(self.counts, dtype=float)
        return np.divide(load, n, out=np.zeros_like(load), where=n > 0)


def _check(rates: np.ndarray, capacity: np.ndarray, prices: np.ndarray) -> None:
    if rates.ndim != 2 or capacity.ndim != 2 or rates.shape[1] != capacity.shape[0] \
            or capacity.shape[1] != prices.shape[0]:
        raise ConfigError(f"shape mismatch: rates {rates.shape}, capacity {capacity.shape}, "
                          f"prices {prices.shape}", key="gpu_mix")
    if np.any(rates < 0) or np.any(capacity < 0) or np.any(prices <= 0):
        raise ConfigError("rates and capacities must be >= 0 and prices > 0", key="gpu_mix")
    need = rates.max(axis=0) > 0
    dead = np.flatnonzero(need & ~np.any(capacity > 0, axis=1))
    if dead.size:
        raise InfeasibleError(f"no instance type serves request-size bucket(s) "
                              f"{dead.tolist()} within the SLO (profiled capacity 0 on every "
                              "type: memory or the SLO rules each out)",
                              hint="add larger devices or TP options, or loosen the SLO")


def _structure(rates: np.ndarray, capacity: np.ndarray) -> list[tuple[int, int, int, float]]:
    """(w, b, t, load coefficient r/c) for every allowed x variable."""
    out = []
    for w, b in zip(*np.nonzero(rates > 0), strict=True):
        for t in np.flatnonzero(capacity[b] > 0):
            out.append((int(w), int(b), int(t), float(rates[w, b] / capacity[b, t])))
    return out


def _solve_highs(rates: np.ndarray, capacity: np.ndarray, prices: np.ndarray,
                 max_util: float, var: list[tuple[int, int, int, float]]
                 ) -> tuple[np.ndarray, np.ndarray]:
    n_t, n_x = len(prices), len(var)
    cols = n_t + n_x
    c = np.concatenate([prices, np.zeros(n_x)])
    pairs = sorted({(w, b) for w, b, _, _ in var})
    row_of = {p: i for i, p in enumerate(pairs)}
    r_eq, c_eq = [], []
    r_ld, c_ld, v_ld = [], [], []
    n_w = rates.shape[0]
    for k, (w, b, t, coef) in enumerate(var):
        r_eq.append(row_of[(w, b)])
        c_eq.append(n_t + k)
        r_ld.append(w * n_t + t)
        c_ld.append(n_t + k)
        v_ld.append(coef)
    for w in range(n_w):
        for t in range(n_t):
            r_ld.append(w * n_t + t)
            c_ld.append(t)
            v_ld.append(-max_util)
    a_eq = coo_matrix((np.ones(len(r_eq)), (r_eq, c_eq)), shape=(len(pairs), cols))
    a_ld = coo_matrix((v_ld, (r_ld, c_ld)), shape=(n_w * n_t, cols))
    ub_n = np.array([math.ceil(sum(co for _, _, tt, co in var if tt == t) / max_util) + 1
                     for t in range(n_t)], dtype=float)
    res = milp(c, constraints=[LinearConstraint(a_eq, 1.0, 1.0),
                               LinearConstraint(a_ld, -np.inf, 0.0)],
               integrality=np.concatenate([np.ones(n_t), np.zeros(n_x)]),
               bounds=Bounds(np.zeros(cols), np.concatenate([ub_n, np.ones(n_x)])))
    if res.x is None:
        raise ConfigError(f"HiGHS found no solution: {res.message}", key="gpu_mix.solver")
    return np.round(res.x[:n_t]), res.x[n_t:]


def _solve_cbc(rates: np.ndarray, capacity: np.ndarray, prices: np.ndarray,
               max_util: float, var: list[tuple[int, int, int, float]]
               ) -> tuple[np.ndarray, np.ndarray]:
    import pulp

    n_t = len(prices)
    prob = pulp.LpProblem("gpu_mix", pulp.LpMinimize)
    n = [pulp.LpVariable(f"n{t}", lowBound=0, cat="Integer") for t in range(n_t)]
    x = [pulp.LpVariable(f"x{k}", lowBound=0, upBound=1) for k in range(len(var))]
    prob += pulp.lpSum(float(prices[t]) * n[t] for t in range(n_t))
    eq: dict[tuple[int, int], list] = {}
    load: dict[tuple[int, int], list] = {}
    for k, (w, b, t, coef) in enumerate(var):
        eq.setdefault((w, b), []).append(x[k])
        load.setdefault((w, t), []).append(coef * x[k])
    for terms in eq.values():
        prob += pulp.lpSum(terms) == 1
    for (_w, t), terms in load.items():
        prob += pulp.lpSum(terms) <= max_util * n[t]
    with warnings.catch_warnings():  # PuLP 3 flags its bundled CBC as deprecated for 4.0
        warnings.simplefilter("ignore", DeprecationWarning)
        status = prob.solve(pulp.PULP_CBC_CMD(msg=False))
    if pulp.LpStatus[status] != "Optimal":
        raise ConfigError(f"CBC status {pulp.LpStatus[status]}", key="gpu_mix.solver")
    return (np.array([round(v.value() or 0.0) for v in n], dtype=float),
            np.array([v.value() or 0.0 for v in x]))


def solve_mix(rates: np.ndarray, capacity: np.ndarray, prices: Sequence[float], *,
              solver: str = "cbc", max_util: float = 1.0) -> MixSolution:
    """The cheapest integer instance counts serving `rates` ([B] or [W, B]) given
    `capacity` [B, T] (rps per instance) and `prices` [T] ($/h per instance)."""
    try:
        kind = Solver(str(solver))
    except ValueError:
        raise UnknownNameError("solver", str(solver), [s.value for s in Solver],
                               key="gpu_mix.solver") from None
    if not 0 < max_util <= 1:
        raise ConfigError(f"must be in (0, 1], got {max_util!r}", key="gpu_mix.max_util")
    r = np.atleast_2d(np.asarray(rates, dtype=float))
    cap = np.asarray(capacity, dtype=float)
    p = np.asarray(prices, dtype=float)
    _check(r, cap, p)
    var = _structure(r, cap)
    start = time.perf_counter()
    fn = _solve_cbc if kind is Solver.CBC else _solve_highs
    counts, xs = fn(r, cap, p, max_util, var) if var else (np.zeros(len(p)), np.zeros(0))
    elapsed = time.perf_counter() - start
    frac = np.zeros((r.shape[0], r.shape[1], len(p)))
    load = np.zeros((r.shape[0], len(p)))
    for (w, b, t, coef), v in zip(var, xs, strict=True):
        frac[w, b, t] = v
        load[w, t] += coef * v
    counts_t = tuple(int(v) for v in counts)
    return MixSolution(counts=counts_t, fractions=frac, load=load,
                       cost_usd_per_hour=float(np.dot(counts_t, p)), solve_time_s=elapsed,
                       solver=kind.value)


def single_type_costs(rates: np.ndarray, capacity: np.ndarray, prices: Sequence[float], *,
                      max_util: float = 1.0) -> np.ndarray:
    """$/h of serving every window with one type alone (inf where it cannot serve a bucket)."""
    r = np.atleast_2d(np.asarray(rates, dtype=float))
    cap = np.asarray(capacity, dtype=float)
    out = np.full(cap.shape[1], np.inf)
    need = r.max(axis=0) > 0
    for t, price in enumerate(prices):
        if np.all(cap[need, t] > 0):
            load = (r[:, need] / cap[need, t]).sum(axis=1).max()
            out[t] = math.ceil(load / max_util - 1e-9) * float(price)
    return out


def feasible(counts: Sequence[int], rates: np.ndarray, capacity: np.ndarray, *,
             max_util: float = 1.0) -> bool:
    """Whether some bucket split serves `rates` ([B]) with these instance counts (an LP)."""
    r = np.asarray(rates, dtype=float)
    cap = np.asarray(capacity, dtype=float)
    var = _structure(r[None, :], cap)
    if not var:
        return True
    pairs = sorted({b for _, b, _, _ in var})
    a_eq = np.zeros((len(pairs), len(var)))
    a_ub = np.zeros((cap.shape[1], len(var)))
    for k, (_, b, t, coef) in enumerate(var):
        a_eq[pairs.index(b), k] = 1.0
        a_ub[t, k] = coef
    b_ub = max_util * np.asarray(counts, dtype=float) * (1 + FEASIBILITY_SLACK) \
        + FEASIBILITY_SLACK
    res = linprog(np.zeros(len(var)), A_ub=a_ub, b_ub=b_ub, A_eq=a_eq,
                  b_eq=np.ones(len(pairs)), bounds=(0, 1), method="highs")
    return bool(res.status == 0)


def brute_force_mix(rates: np.ndarray, capacity: np.ndarray, prices: Sequence[float], *,
                    max_count: int, max_util: float = 1.0) -> tuple[tuple[int, ...], float]:
    """Reference solver: every count vector up to max_count per type, cheapest feasible one
    (for checking solve_mix on small instances)."""
    p = np.asarray(prices, dtype=float)
    best: tuple[tuple[int, ...], float] | None = None
    for counts in itertools.product(range(max_count + 1), repeat=len(p)):
        cost = float(np.dot(counts, p))
        if best is not None and cost >= best[1] - 1e-12:
            continue
        if feasible(counts, rates, capacity, max_util=max_util):
            best = (counts, cost)
    if best is None:
        raise ConfigError(f"no mix with at most {max_count} instances per type",
                          key="max_count")
    return best
