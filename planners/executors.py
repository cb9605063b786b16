"""One executor interface for every fan-out: planner evaluations, sweep grids, multi-seed runs.

`Executor.map(fn, tasks)` runs `fn(task)` for each task and returns one `TaskResult` per task,
in task order. A task that raises is reported (`ok=False`, `error` = its exception and
traceback), never swallowed and never allowed to kill the other tasks. Tasks travel in
batches (several per worker round-trip) so process or Ray start-up and scheduling overhead do
not dominate cheap evaluations; `fn` and the tasks must be picklable (module-level functions,
frozen specs) and should return small summaries, not event logs.

Executors: `local` (a process pool on this machine, the default) and `ray` (a Ray cluster at
`address`, or a local Ray instance). Multi-seed runs draw independent seeds with
`numpy.random.SeedSequence.spawn` (`spawn_seeds`, `map_seeds`).
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from hwmodels.registry import Registry

# Batches per worker per map() call: enough to balance uneven task times, few enough that the
# per-batch pickling / IPC round-trip (~1 ms locally, ~5-10 ms through Ray) stays negligible.
BATCHES_PER_WORKER = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskResult:
    """The outcome of one task: its value, or why it failed."""

    index: int  # position of the task in the list given to map()
    ok: bool
    value: Any = None
    error: str = ""  # "ExceptionType: message" followed by the traceback
    duration_s: float = 0.0

    def unwrap(self) -> Any:
        """The value, or a RuntimeError carrying the task's error."""
        if not self.ok:
            raise RuntimeError(f"task {self.index} failed: {self.error}")
        return self.value


@runtime_checkable
class Executor(Protocol):
    """Runs fn over tasks, possibly in parallel; results come back in task order."""

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> list[TaskResult]: ...

    def close(self) -> None: ...


class ExecutorKind(StrEnum):
    """The executor registry keys (`--executor`)."""

    LOCAL = "local"
    RAY = "ray"


EXECUTORS: Registry[ExecutorKind, Callable[..., Executor]] = Registry(
    "executor", ExecutorKind, key="executor")


def run_batch(fn: Callable[[Any], Any], batch: Sequence[tuple[int, Any]]) -> list[TaskResult]:
    """Run one batch of (index, task) pairs, catching each task's failure separately."""
    out = []
    for index, task in batch:
        start = time.perf_counter()
        try:
            value = fn(task)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, not swallowed
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            out.append(TaskResult(index=index, ok=False, error=error,
                                  duration_s=time.perf_counter() - start))
        else:
            out.append(TaskResult(index=index, ok=True, value=value,
                                  duration_s=time.perf_counter() - start))
    return out


def make_batches(n_tasks: int, workers: int, batch_size: int | None = None
                 ) -> list[range]:
    """Contiguous index ranges: `batch_size` each, or about BATCHES_PER_WORKER per worker."""
    if n_tasks == 0:
        return []
    if batch_size is None:
        batch_size = max(1, math.ceil(n_tasks / (max(1, workers) * BATCHES_PER_WORKER)))
    return [range(i, min(i + batch_size, n_tasks)) for i in range(0, n_tasks, batch_size)]


def _check_workers(value: int | None, key: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"must be an integer >= 1, got {value!r}", key=key)
    return value


@EXECUTORS.register(ExecutorKind.LOCAL)
class LocalExecutor:
    """A process pool on this machine (inline when one worker or one task).

    The pool starts on the first parallel map() and is reused until close() (or the end of a
    `with` block), so repeated planner calls pay the start-up once.
    """

    def __init__(self, max_workers: int | None = None, *, batch_size: int | None = None) -> None:
        self.max_workers = _check_workers(max_workers, "executor.max_workers") or (
            os.cpu_count() or 1)
        self.batch_size = _check_workers(batch_size, "executor.batch_size")
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> list[TaskResult]:
        tasks = list(tasks)
        if self.max_workers == 1 or len(tasks) <= 1:
            return run_batch(fn, list(enumerate(tasks)))
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.max_workers)
        batches = make_batches(len(tasks), self.max_workers, self.batch_size)
        futures = [(b, self._pool.submit(run_batch, fn, [(i, tasks[i]) for i in b]))
                   for b in batches]
        results: list[TaskResult] = []
        broken = False
        for b, fut in futures:
            try:
                results.extend(fut.result())
            except BrokenProcessPool as exc:  # a worker died (segfault, OOM kill): report it
                broken = True
                results.extend(TaskResult(index=i, ok=False, error=f"worker died: {exc}")
                               for i in b)
            except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable task or result
                results.extend(TaskResult(index=i, ok=False,
                                          error=f"{type(exc).__name__}: {exc}") for i in b)
        if broken:
            self.close()  # a broken pool cannot run anything else; the next map() starts anew
        return sorted(results, key=lambda r: r.index)


@EXECUTORS.register(ExecutorKind.RAY)
class RayExecutor:
    """Tasks in batches as Ray remote calls: a cluster at `address`, or a local instance.

    ray.init runs on the first map() (not in the constructor: constructors do no I/O); if this
    executor started Ray, close() shuts it down. `init_kwargs` go to ray.init (e.g.
    num_cpus=2, include_dashboard=False for a local test instance).
    """

    def __init__(self, address: str | None = None, *, batch_size: int | None = None,
                 **init_kwargs: Any) -> None:
        self.address = address
        self.batch_size = _check_workers(batch_size, "executor.batch_size")
        self.init_kwargs = init_kwargs
        self._started = False
        self._remote: Any = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray executor needs Ray: pip install 'fleetsim[ray]'",
                              key="executor", allowed=EXECUTORS.names()) from None
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, **self.init_kwargs}
            ray.init(address=self.address, **kwargs)
            self._started = True
        if self._remote is None:
            self._remote = ray.remote(run_batch)
        return ray

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
            self._remote = None

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> list[TaskResult]:
        tasks = list(tasks)
        if not tasks:
            return []
        ray = self._ray()
        workers = int(ray.cluster_resources().get("CPU", 1))
        batches = make_batches(len(tasks), workers, self.batch_size)
        fn_ref = ray.put(fn)  # shipped once, not once per batch
        refs = [(b, self._remote.remote(fn_ref, [(i, tasks[i]) for i in b])) for b in batches]
        results: list[TaskResult] = []
        for b, ref in refs:
            try:
                results.extend(ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - worker crash / node loss: report it
                results.extend(TaskResult(index=i, ok=False,
                                          error=f"{type(exc).__name__}: {exc}") for i in b)
        return sorted(results, key=lambda r: r.index)


def make_executor(name: str | ExecutorKind = ExecutorKind.LOCAL, **kwargs: Any) -> Executor:
    """Build an executor by registry name (`local` or `ray`); kwargs go to its constructor."""
    return EXECUTORS.get(name)(**kwargs)


def spawn_seeds(seed: int | None, n: int) -> list[np.random.SeedSequence]:
    """n independent child seed sequences of `seed` (numpy SeedSequence.spawn)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"must be an integer >= 1, got {n!r}", key="num_seeds")
    return np.random.SeedSequence(seed).spawn(n)


def seed_int(seq: np.random.SeedSequence) -> int:
    """A 63-bit integer seed drawn from a SeedSequence (for APIs that take an int seed)."""
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def map_values(executor: Executor, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> list[Any]:
    """fn over tasks through the executor, as plain values in task order; a failed task raises."""
    return [r.unwrap() for r in executor.map(fn, tasks)]


def map_seeds(executor: Executor, fn: Callable[[tuple[Any, int]], Any], task: Any, *,
              seed: int | None, num_seeds: int) -> list[TaskResult]:
    """Run fn((task, seed_i)) for num_seeds independent seeds spawned from `seed`."""
    seeds = [seed_int(s) for s in spawn_seeds(seed, num_seeds)]
    return executor.map(fn, [(task, s) for s in seeds])
