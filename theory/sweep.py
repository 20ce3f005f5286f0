r"""Sweeps: a grid of configurations run on a ``concurrent.futures`` executor, each result cached.

A sweep is a task function ``fn(config: dict) -> dict`` and a list of configurations, usually the
Cartesian product of a few named axes (:func:`grid`). :func:`run_sweep` runs the tasks that are not
yet in the cache on

* ``"processes"`` (default): a local :class:`~concurrent.futures.ProcessPoolExecutor`;
* ``"threads"``: a local :class:`~concurrent.futures.ThreadPoolExecutor`;
* ``"serial"``: one after the other in this process (easiest to debug);
* any :class:`concurrent.futures.Executor` you pass (not shut down afterwards);
* a Dask cluster, given its scheduler address (``"tcp://host:8786"``) or a
  ``dask.distributed.Client`` (needs the ``dask`` extra: ``pip install 'lrdecay[dask]'``).

Cache. Each task is identified by :func:`task_key`, a SHA-256 hash of the function's qualified name
and of its configuration in canonical JSON (sorted keys, floats by ``repr``). As soon as a task
finishes, the parent process writes ``cache_dir/<key>.npz`` with :func:`lrdecay.theory.io.save_result`
(the result's arrays plus the configuration under ``__config__``, written to a temporary file and
renamed, so a file is either complete or absent). A rerun loads the cached tasks instead of
recomputing them, so a killed sweep resumes where it stopped. The key does not see the function's
*code*: after editing a task, pass ``recompute=True`` or add an entry such as ``"version": 2`` to the
configurations.

Determinism. The runner never draws random numbers and never hands a task anything but its own
configuration, so results do not depend on the executor, the number of workers or the order in which
tasks finish. Tasks that need randomness derive their stream from the configuration with
:func:`config_seed`, which mixes the ``"seed"`` entry with a hash of the other entries,

.. math::  \text{entropy} = (\text{base\_seed},\ \text{seed},\ h_1, h_2, h_3, h_4),
           \qquad (h_1,\dots,h_4) = \text{first 128 bits of } \operatorname{SHA-256}(\text{config} \setminus \text{seed}),

so two configurations that differ in any entry never share a stream by accident.

Failures. A task that raises does not stop the others: every other task still runs and is cached,
then :class:`SweepError` is raised, listing the failed configurations (``.failures``) and chained to
the first exception. Fix the cause and rerun: only the failed tasks are computed again.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import importlib
import inspect
import itertools
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from lrdecay.theory.io import canonical_json, load_result, save_result

__all__ = ["grid", "task_key", "config_seed", "run_sweep", "SweepError", "EXECUTORS"]

#: Executor names accepted by :func:`run_sweep` (besides an Executor, a Client or a scheduler address).
EXECUTORS = ("processes", "threads", "serial")

_DASK_HINT = "pip install 'lrdecay[dask]'"


class SweepError(RuntimeError):
    """Some tasks of a sweep raised. ``failures`` holds ``(index, config, exception)`` triples.

    ``index`` is the position of the configuration in the list given to :func:`run_sweep` (the first
    one, when the same configuration appears several times). All other tasks were run and cached.
    """

    def __init__(self, message: str, failures: list[tuple[int, dict, BaseException]]):
        super().__init__(message)
        self.failures = failures


# --------------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------------

def _canonical(value: Any, where: str) -> Any:
    """Plain-JSON copy of ``value`` (numpy scalars to Python, tuples to lists); ValueError otherwise."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return _canonical(value.item(), where)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _canonical(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    hint = " (use a list)" if isinstance(value, np.ndarray) else ""
    raise ValueError(
        f"{where}: {type(value).__name__} value {value!r} is not JSON-serialisable{hint}; config values "
        "must be None, bool, int, float, str, or lists/dicts of these"
    )


_canonical_json = canonical_json  # sorted keys, no spaces, floats by repr (nan/inf allowed)


def _check_config(config: Any, where: str = "config") -> dict:
    if not isinstance(config, Mapping):
        raise ValueError(f"{where}: each configuration must be a dict, got {type(config).__name__} {config!r}")
    return _canonical(config, where)


def grid(**axes: Any) -> list[dict]:
    """Cartesian product of named axes, as a list of configuration dicts.

    ``grid(gamma=[0, 1], seed=[0, 1, 2])`` gives six dicts; the order is deterministic, that of
    nested ``for`` loops in the order the axes are written (the first axis varies slowest)::

        [{'gamma': 0, 'seed': 0}, {'gamma': 0, 'seed': 1}, {'gamma': 0, 'seed': 2},
         {'gamma': 1, 'seed': 0}, ...]

    An axis is a list, tuple, range or 1-D array; any other value (a number, a string, ``None``, a
    dict) is held fixed in every configuration, so ``grid(n=10, seed=range(3))`` is three
    configurations with ``n=10``. A fixed list-valued entry is written as a one-element axis:
    ``milestones=[[100, 200]]``. Numpy scalars are turned into Python numbers.
    """
    names, values = [], []
    for name, axis in axes.items():
        if isinstance(axis, np.ndarray) and axis.ndim > 1:
            raise ValueError(f"{name}: an axis must be one-dimensional, got an array of shape {axis.shape}")
        if isinstance(axis, (list, tuple, range)) or (isinstance(axis, np.ndarray) and axis.ndim == 1):
            points = [_canonical(v, f"{name}[{i}]") for i, v in enumerate(axis)]
            if not points:
                raise ValueError(f"{name}: the axis is empty, so the grid would have no points")
        else:
            points = [_canonical(axis, name)]
        names.append(name)
        values.append(points)
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def _task_name(fn: Callable) -> str:
    """``module.qualname`` of a top-level function, checked to be importable under that name."""
    if inspect.ismethod(fn) or not callable(fn):
        raise ValueError(f"fn: must be a top-level function, got {fn!r}")
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ValueError(
            f"fn: must be a top-level function defined in a module (not a lambda, nested function, "
            f"partial or callable object), got {fn!r}"
        )
    try:
        obj = importlib.import_module(module) if module not in sys.modules else sys.modules[module]
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        obj = None
    if obj is not fn:
        raise ValueError(f"fn: {module}.{qualname} is not reachable under its own name, so it cannot be pickled")
    return f"{module}.{qualname}"


def task_key(fn: Callable, config: Mapping[str, Any]) -> str:
    """Stable cache key of one task: the SHA-256 (first 32 hex digits) of the function's qualified
    name and its configuration in canonical JSON (sorted keys, floats by ``repr``).

    Equal configurations give equal keys whatever their key order or numeric container (``np.float64``
    or ``float``, tuple or list); ``1`` and ``1.0`` are different configurations.
    """
    return _key(_task_name(fn), _check_config(config))


def _key(name: str, config: dict) -> str:
    return hashlib.sha256(f"{name}\n{_canonical_json(config)}".encode("utf-8")).hexdigest()[:32]


def config_seed(config: Mapping[str, Any], base_seed: int = 0, *, shared: Sequence[str] = ()) -> np.random.SeedSequence:
    """The :class:`numpy.random.SeedSequence` of a configuration.

    Its entropy is ``(base_seed, config["seed"], h)`` where ``h`` is 128 bits of the SHA-256 of the
    canonical JSON of the *other* entries, so configurations differing in any entry get independent
    streams, and the same configuration always gets the same stream (whatever the worker, the
    process or the order). Spawn children from it for per-path streams.

    ``shared`` names entries left out of ``h``: configurations that differ only in those entries
    deliberately share a stream (common random numbers, e.g. ``shared=("decay_step",)`` to compare
    decay times on the same noise).
    """
    config = _check_config(config)
    if "seed" not in config:
        raise ValueError(f"config: needs a 'seed' entry (a non-negative int) to derive a stream, got keys {sorted(config)}")
    seed = config["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"config['seed']: must be a non-negative int, got {seed!r}")
    if isinstance(base_seed, bool) or not isinstance(base_seed, (int, np.integer)) or base_seed < 0:
        raise ValueError(f"base_seed: must be a non-negative int, got {base_seed!r}")
    if isinstance(shared, str):
        shared = (shared,)
    rest = {k: v for k, v in config.items() if k != "seed" and k not in shared}
    digest = hashlib.sha256(_canonical_json(rest).encode("utf-8")).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.SeedSequence([int(base_seed), seed, *words])


# --------------------------------------------------------------------------------------------------
# Results and cache
# --------------------------------------------------------------------------------------------------

def _result_arrays(result: Any) -> dict[str, np.ndarray]:
    """Check a task's result and turn it into the arrays that are stored."""
    if not isinstance(result, Mapping):
        raise TypeError(f"the task returned {type(result).__name__}, expected a dict of numbers/arrays/lists")
    arrays = {}
    for k, v in result.items():
        if not isinstance(k, str):
            raise TypeError(f"the task's result keys must be strings, got {k!r}")
        try:
            a = np.asarray(v)
        except ValueError as exc:  # ragged lists
            raise TypeError(f"the task's result {k!r} is not a rectangular array: {exc}") from None
        if a.dtype.kind in "OV":
            raise TypeError(f"the task's result {k!r} (of type {type(v).__name__}) cannot be stored as a numeric "
                            "array; return numbers, strings, arrays or lists of them (flatten nested dicts)")
        arrays[k] = a
    return arrays


def _unwrap(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Result dict as returned by :func:`run_sweep`: 0-d numbers/strings as Python scalars, the rest arrays."""
    return {k: (a.item() if a.ndim == 0 and a.dtype.kind in "biufcU" else a) for k, a in arrays.items()}


def _load_cached(path: Path, config: dict) -> dict | None:
    if not path.exists():
        return None
    try:
        arrays, stored = load_result(path)
    except Exception as exc:  # unreadable file: recompute rather than fail the sweep
        warnings.warn(f"cache file {path} is unreadable ({exc}); recomputing it", RuntimeWarning, stacklevel=3)
        return None
    stored.pop("provenance", None)   # added by save_result; not part of the task's configuration
    if _canonical_json(stored) != _canonical_json(config):
        warnings.warn(f"cache file {path} holds a different configuration; recomputing it", RuntimeWarning, stacklevel=3)
        return None
    return _unwrap(arrays)


# --------------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------------

def _is_dask_client(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "distributed" and hasattr(obj, "get_executor")


def _is_address(obj: Any) -> bool:
    return isinstance(obj, str) and "://" in obj


def check_executor(executor: Any) -> None:
    """Raise a one-line ``ValueError`` unless ``executor`` is one :func:`run_sweep` accepts."""
    if isinstance(executor, cf.Executor) or _is_dask_client(executor) or _is_address(executor):
        return
    if isinstance(executor, str) and executor in EXECUTORS:
        return
    raise ValueError(
        f"executor: expected one of {', '.join(repr(e) for e in EXECUTORS)}, a concurrent.futures.Executor, "
        f"a dask.distributed.Client or a Dask scheduler address like 'tcp://127.0.0.1:8786'; got {executor!r}"
    )


def _available_cpus() -> int:
    if hasattr(os, "process_cpu_count"):  # Python >= 3.13
        return os.process_cpu_count() or 1
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:
        return os.cpu_count() or 1


def _die_with_parent(parent: int) -> None:
    """Process-pool worker initializer: end this worker when its parent process is gone (a killed
    sweep leaves no orphans blocked on the task queue)."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()


#: seconds to wait for a Dask scheduler before giving up
DASK_CONNECT_TIMEOUT = 5


def _open_executor(executor: Any, max_workers: int | None, n_tasks: int) -> tuple[cf.Executor, Callable[[bool], Any]]:
    """The executor to submit to, and ``release(wait)`` (a no-op for executors we do not own)."""
    if isinstance(executor, cf.Executor):
        return executor, lambda wait: None
    if executor in ("processes", "threads"):
        workers = min(max_workers or _available_cpus(), n_tasks)
        if executor == "processes":
            pool = cf.ProcessPoolExecutor(max_workers=workers, initializer=_die_with_parent, initargs=(os.getpid(),))
        else:
            pool = cf.ThreadPoolExecutor(max_workers=workers)
        return pool, lambda wait: pool.shutdown(wait=wait, cancel_futures=True)
    # Dask: a Client, or an address to connect to.
    if _is_dask_client(executor):
        return executor.get_executor(pure=False), lambda wait: None
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError(f"executor={executor!r} runs the sweep on a Dask cluster, which needs the 'dask' extra: "
                          f"{_DASK_HINT}") from exc
    try:
        client = Client(executor, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise OSError(f"executor: could not connect to the Dask scheduler at {executor} within "
                      f"{DASK_CONNECT_TIMEOUT} s ({type(exc).__name__}); is it running?") from None
    return client.get_executor(pure=False), lambda wait: client.close()


# --------------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------------

def _describe(config: dict) -> str:
    return _canonical_json(config)


def run_sweep(
    fn: Callable[[dict], Mapping[str, Any]],
    configs: Sequence[Mapping[str, Any]],
    *,
    cache_dir: str | os.PathLike | None,
    executor: Any = "processes",
    max_workers: int | None = None,
    progress: bool = True,
    recompute: bool = False,
) -> list[dict]:
    """Run ``fn`` on every configuration, caching each result; return the results in ``configs`` order.

    Parameters
    ----------
    fn
        A top-level function ``fn(config) -> dict`` (picklable by reference). It receives a plain-JSON
        copy of its configuration and returns a dict of numbers, strings, arrays or lists.
    configs
        Non-empty list of configuration dicts (e.g. from :func:`grid`); values must be
        JSON-serialisable. Repeated configurations are computed once.
    cache_dir
        Directory of the cache (created if needed); ``None`` disables caching.
    executor
        ``"processes"`` (default), ``"threads"``, ``"serial"``, a :class:`concurrent.futures.Executor`
        (left open), a ``dask.distributed.Client`` (left open), or a Dask scheduler address such as
        ``"tcp://127.0.0.1:8786"`` (a client is opened and closed; the cluster is left running).
    max_workers
        Pool size for ``"processes"``/``"threads"`` (default: the CPUs available to this process,
        at most the number of tasks to run); ignored by the other executors, which are sized where
        they are created.
    progress
        Show a tqdm bar counting finished tasks; cached tasks count as done from the start.
    recompute
        Ignore the cache: run every task and overwrite its file.

    Returns
    -------
    One dict per configuration: arrays as numpy arrays, scalars as Python numbers/strings, the same
    whether the task ran now or was read from the cache.

    Raises
    ------
    ValueError
        Bad ``fn``, ``configs``, ``cache_dir``, ``executor`` or ``max_workers``.
    SweepError
        After all other tasks have finished and been cached, if some tasks raised.
    """
    name = _task_name(fn)
    canon = _check_configs(configs)
    check_executor(executor)
    if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1):
        raise ValueError(f"max_workers: must be None or a positive int, got {max_workers!r}")
    cache_dir = _check_cache_dir(cache_dir)

    keys = [_key(name, c) for c in canon]
    first_index: dict[str, int] = {}
    for i, k in enumerate(keys):
        first_index.setdefault(k, i)
    done = {} if cache_dir is None or recompute else _cached(cache_dir, first_index, canon)
    pending = [(k, i) for k, i in first_index.items() if k not in done]
    tracker = _Tracker(name, fn.__name__, canon, cache_dir, done, len(first_index), progress)
    try:
        if not pending:
            tracker.open()
        elif executor == "serial":
            _run_serial(fn, pending, canon, tracker)
        else:
            _run_pool(fn, pending, canon, tracker, executor, max_workers)
    finally:
        tracker.close()
    if tracker.failures:
        _raise_failures(name, tracker.failures, len(first_index), cache_dir is not None)
    results, seen = [], set()
    for k in keys:
        results.append(done[k] if k not in seen else dict(done[k]))
        seen.add(k)
    return results


def _check_configs(configs) -> list[dict]:
    if isinstance(configs, Mapping) or isinstance(configs, (str, bytes)):
        raise ValueError(f"configs: expected a list of dicts (e.g. from grid()), got a single {type(configs).__name__}")
    try:
        configs = list(configs)
    except TypeError:
        raise ValueError(f"configs: expected a list of dicts (e.g. from grid()), got {type(configs).__name__}") from None
    if not configs:
        raise ValueError("configs: the list of configurations is empty; nothing to run")
    return [_check_config(c, f"configs[{i}]") for i, c in enumerate(configs)]


def _check_cache_dir(cache_dir) -> Path | None:
    if cache_dir is None:
        return None
    if not isinstance(cache_dir, (str, os.PathLike)):
        raise ValueError(f"cache_dir: expected a directory path or None, got {cache_dir!r}")
    cache_dir = Path(cache_dir)
    if cache_dir.exists() and not cache_dir.is_dir():
        raise ValueError(f"cache_dir: {str(cache_dir)!r} exists and is not a directory")
    cache_dir.mkdir(parents=True, exist_ok=True)
    return cache_dir


def _cached(cache_dir: Path, first_index: dict, canon: list) -> dict:
    done = {}
    for k, i in first_index.items():
        cached = _load_cached(cache_dir / f"{k}.npz", canon[i])
        if cached is not None:
            done[k] = cached
    return done


class _Tracker:
    """Collects finished tasks: stores each result (and its cache file), records failures, drives the
    progress bar (opened once the workers exist, so tqdm's monitor thread is not copied into forks)."""

    def __init__(self, name, label, canon, cache_dir, done, total, progress):
        self.name, self.label, self.canon, self.cache_dir, self.done = name, label, canon, cache_dir, done
        self.total, self.progress, self.n_cached = total, progress, len(done)
        self.failures: list[tuple[int, dict, BaseException]] = []
        self.bar = None

    def open(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=self.total, initial=self.n_cached, desc=self.label, unit="task",
                        disable=not self.progress, dynamic_ncols=True)
        self.bar.set_postfix(cached=self.n_cached, failed=0, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def finish(self, k: str, i: int, outcome: Any, error: BaseException | None) -> None:
        if error is None:
            try:
                arrays = _result_arrays(outcome)
                if self.cache_dir is not None:
                    save_result(self.cache_dir / f"{k}.npz", arrays, self.canon[i])
                self.done[k] = _unwrap(arrays)
            except Exception as exc:  # an unstorable result counts as a failed task
                error = exc
        if error is not None:
            self.failures.append((i, self.canon[i], error))
            self.bar.write(f"{self.name}: task failed for config {_describe(self.canon[i])}: "
                           f"{type(error).__name__}: {error}", file=sys.stderr)
        self.bar.update(1)
        self.bar.set_postfix(cached=self.n_cached, failed=len(self.failures), refresh=False)


def _run_serial(fn, pending, canon, tracker: _Tracker) -> None:
    tracker.open()
    for k, i in pending:
        try:
            out, err = fn(json.loads(_canonical_json(canon[i]))), None
        except Exception as exc:
            out, err = None, exc
        tracker.finish(k, i, out, err)


def _run_pool(fn, pending, canon, tracker: _Tracker, executor, max_workers) -> None:
    pool, release = _open_executor(executor, max_workers, len(pending))
    futures: dict[cf.Future, tuple[str, int]] = {}
    interrupted = True
    try:
        for k, i in pending:
            futures[pool.submit(fn, json.loads(_canonical_json(canon[i])))] = (k, i)
        tracker.open()
        for fut in cf.as_completed(futures):
            k, i = futures.pop(fut)
            try:
                out, err = fut.result(), None
            except Exception as exc:
                out, err = None, exc
            tracker.finish(k, i, out, err)
        interrupted = False
    finally:
        for fut in futures:  # only left when interrupted (e.g. Ctrl-C)
            fut.cancel()
        release(not interrupted)


def _raise_failures(name, failures, n_tasks, cached: bool):
    failures.sort(key=lambda f: f[0])
    lines = [f"  configs[{i}] = {_describe(c)}: {type(e).__name__}: {e}" for i, c, e in failures[:10]]
    if len(failures) > 10:
        lines.append(f"  ... and {len(failures) - 10} more (see .failures)")
    n_ok = n_tasks - len(failures)
    raise SweepError(
        f"{len(failures)} of {n_tasks} tasks of {name} failed ({n_ok} finished"
        f"{' and cached' if cached else ''}; rerun to compute only the failed ones):\n" + "\n".join(lines),
        failures,
    ) from failures[0][2]
