"""Tests of lrdecay.theory.sweep: grids, cache keys, seeding, executors, resume after a kill, failures."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from lrdecay.theory.io import load_result
from lrdecay.theory.sweep import SweepError, config_seed, grid, run_sweep, task_key

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent

# Behaviour switches of the toy task, read from the environment so that they are not part of the
# configuration (and so do not change its cache key or its random stream).
ENV_DIR = "SWEEP_TEST_DIR"          # directory receiving one marker file per call: calls/<id>.<uuid>
ENV_SLEEP = "SWEEP_TEST_SLEEP"      # seconds each task sleeps
ENV_EXIT_ON = "SWEEP_TEST_EXIT_ON"  # id whose task kills its process the first time (os._exit)
ENV_RAISE_ON = "SWEEP_TEST_RAISE_ON"  # id whose task raises


def toy_task(config: dict) -> dict:
    """Seeded toy task: a few normal draws from the config's own stream, plus echoes of the config."""
    out_dir = os.environ.get(ENV_DIR)
    if out_dir:
        calls = Path(out_dir) / "calls"
        calls.mkdir(parents=True, exist_ok=True)
        (calls / f"{config['id']}.{uuid.uuid4().hex}").touch()
        if os.environ.get(ENV_EXIT_ON) == str(config["id"]):
            marker = Path(out_dir) / "exited"
            if not marker.exists():
                marker.touch()
                os._exit(3)
    if os.environ.get(ENV_RAISE_ON) == str(config["id"]):
        raise RuntimeError(f"toy failure on id {config['id']}")
    # later tasks sleep less, so that with several workers they finish out of submission order
    time.sleep(float(os.environ.get(ENV_SLEEP, "0")) * (1 + 0.5 * (config["id"] % 2 == 0)))
    rng = np.random.default_rng(config_seed(config))
    x = (1.0 + config["gamma"]) * rng.standard_normal(4)
    paths = rng.standard_normal((3, 2))
    return {"x": x, "paths": paths, "mean": float(x.mean()), "id": config["id"], "gamma": config["gamma"],
            "steps": [1, 2, 3], "label": f"g{config['gamma']}"}


def not_a_dict_task(config: dict):
    return [1, 2, 3]


def toy_configs(n_gamma: int = 3, n_seed: int = 2) -> list[dict]:
    configs = grid(gamma=list(np.linspace(0.0, 1.0, n_gamma)), seed=list(range(n_seed)), n=4)
    for i, c in enumerate(configs):
        c["id"] = i
    return configs


def calls_by_id(out_dir: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    calls = out_dir / "calls"
    for f in calls.iterdir() if calls.exists() else []:
        i = int(f.name.split(".")[0])
        counts[i] = counts.get(i, 0) + 1
    return counts


def assert_same_results(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            va, vb = ra[k], rb[k]
            assert type(va) is type(vb), k
            if isinstance(va, np.ndarray):
                assert va.dtype == vb.dtype and np.array_equal(va, vb), k
            else:
                assert va == vb, k


@pytest.fixture
def clean_env(monkeypatch):
    for name in (ENV_DIR, ENV_SLEEP, ENV_EXIT_ON, ENV_RAISE_ON):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --------------------------------------------------------------------------------------------------
# grid, task_key, config_seed
# --------------------------------------------------------------------------------------------------

def test_grid_order_and_fixed_values():
    g = grid(gamma=[0, 1], seed=range(3), n=10)
    assert g == [{"gamma": a, "seed": s, "n": 10} for a in (0, 1) for s in range(3)]
    g = grid(eta=np.array([0.1, 0.2]), milestones=[[100, 200]], name="x")
    assert g == [{"eta": 0.1, "milestones": [100, 200], "name": "x"},
                 {"eta": 0.2, "milestones": [100, 200], "name": "x"}]
    assert all(type(c["eta"]) is float for c in g)


def test_task_key_is_stable_and_canonical():
    # a pinned value: the key must not change between processes, sessions or versions
    assert task_key(json.dumps, {"gamma": 0.5, "seed": 1}) == "7eb909301e364f624bf215aebb096968"
    k = task_key(toy_task, {"gamma": 0.5, "seed": 1})
    assert k == task_key(toy_task, {"seed": 1, "gamma": np.float64(0.5)})  # key order, numpy scalars
    assert k == task_key(toy_task, {"seed": np.int64(1), "gamma": 0.5})
    assert k != task_key(toy_task, {"gamma": 0.5, "seed": 2})
    assert task_key(toy_task, {"a": 0.1 + 0.2}) != task_key(toy_task, {"a": 0.3})  # floats by repr
    assert k != task_key(not_a_dict_task, {"gamma": 0.5, "seed": 1})  # function name is part of it
    assert task_key(toy_task, {"a": 1}) != task_key(toy_task, {"a": 1.0})
    assert task_key(toy_task, {"a": (1, 2)}) == task_key(toy_task, {"a": [1, 2]})


def test_config_seed_streams():
    def draw(c, **kw):
        return np.random.default_rng(config_seed(c, **kw)).random(4)

    base = {"gamma": 0.5, "seed": 0, "eta": 0.1}
    assert np.array_equal(draw(base), draw({"eta": 0.1, "seed": 0, "gamma": np.float64(0.5)}))
    # same seed, different other entry -> different stream; and the reverse
    assert not np.array_equal(draw(base), draw({**base, "gamma": 1.0}))
    assert not np.array_equal(draw(base), draw({**base, "seed": 1}))
    assert not np.array_equal(draw(base), draw(base, base_seed=1))
    # common random numbers on request
    assert np.array_equal(draw(base, shared=("eta",)), draw({**base, "eta": 0.2}, shared=("eta",)))
    with pytest.raises(ValueError, match="'seed'"):
        config_seed({"gamma": 0.5})
    with pytest.raises(ValueError, match=r"config\['seed'\]"):
        config_seed({"seed": -1})
    with pytest.raises(ValueError, match="base_seed"):
        config_seed({"seed": 1}, base_seed=-2)


# --------------------------------------------------------------------------------------------------
# Same results whatever the executor and the number of workers
# --------------------------------------------------------------------------------------------------

def test_same_results_serial_threads_and_processes(tmp_path, clean_env):
    clean_env.setenv(ENV_SLEEP, "0.02")
    configs = toy_configs()
    serial = run_sweep(toy_task, configs, cache_dir=tmp_path / "serial", executor="serial", progress=False)
    # results come back in configs order with the expected types
    assert [r["id"] for r in serial] == [c["id"] for c in configs]
    assert isinstance(serial[0]["mean"], float) and isinstance(serial[0]["label"], str)
    assert isinstance(serial[0]["steps"], np.ndarray) and serial[0]["paths"].shape == (3, 2)
    # every configuration drew its own numbers
    xs = np.array([r["x"] for r in serial])
    assert len({row.tobytes() for row in xs}) == len(configs)
    for name, kw in [("p1", dict(executor="processes", max_workers=1)),
                     ("p2", dict(executor="processes", max_workers=2)),
                     ("t2", dict(executor="threads", max_workers=2))]:
        other = run_sweep(toy_task, configs, cache_dir=tmp_path / name, progress=False, **kw)
        assert_same_results(serial, other)
    # read back from the cache: identical too, without running anything
    clean_env.setenv(ENV_DIR, str(tmp_path / "rerun"))
    cached = run_sweep(toy_task, configs, cache_dir=tmp_path / "p2", executor="processes", progress=False)
    assert_same_results(serial, cached)
    assert calls_by_id(tmp_path / "rerun") == {}


def test_given_executor_is_used_and_left_open(tmp_path, clean_env):
    from concurrent.futures import ThreadPoolExecutor

    configs = toy_configs(2, 2)
    with ThreadPoolExecutor(2) as pool:
        a = run_sweep(toy_task, configs, cache_dir=None, executor=pool, progress=False)
        b = run_sweep(toy_task, configs, cache_dir=None, executor=pool, progress=False)  # still usable
    assert_same_results(a, b)
    assert_same_results(a, run_sweep(toy_task, configs, cache_dir=None, executor="serial", progress=False))


def test_duplicate_configs_are_computed_once(tmp_path, clean_env):
    clean_env.setenv(ENV_DIR, str(tmp_path))
    configs = toy_configs(2, 1)
    res = run_sweep(toy_task, configs + configs[:1], cache_dir=tmp_path / "c", executor="serial", progress=False)
    assert calls_by_id(tmp_path) == {0: 1, 1: 1}
    assert_same_results(res[:1], res[2:])
    assert res[0] is not res[2]


# --------------------------------------------------------------------------------------------------
# Cache: complete files, resume after a kill, recompute
# --------------------------------------------------------------------------------------------------

def test_cache_files_are_complete_and_hold_their_config(tmp_path, clean_env):
    configs = toy_configs()
    res = run_sweep(toy_task, configs, cache_dir=tmp_path, executor="processes", max_workers=2, progress=False)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"{task_key(toy_task, c)}.npz" for c in configs)  # no temporary files left
    for c, r in zip(configs, res):
        arrays, stored = load_result(tmp_path / f"{task_key(toy_task, c)}.npz")
        assert stored.pop("provenance")["package_version"]   # where the cached result came from
        assert stored == c
        assert np.array_equal(arrays["x"], r["x"]) and float(arrays["mean"]) == r["mean"]


def _sweep_script(cache_dir: Path, executor: str, max_workers: int) -> str:
    return textwrap.dedent(f"""
        import importlib, sys
        sys.path[:0] = [{str(TESTS_DIR)!r}, {str(REPO)!r}]
        mod = importlib.import_module({__name__!r})  # the same module name, hence the same task keys
        from lrdecay.theory.sweep import run_sweep
        run_sweep(mod.toy_task, mod.toy_configs(4, 2), cache_dir={str(cache_dir)!r},
                  executor={executor!r}, max_workers={max_workers}, progress=False)
    """)


def _reference(tmp_path: Path, monkeypatch) -> list[dict]:
    with monkeypatch.context() as m:
        for name in (ENV_DIR, ENV_SLEEP, ENV_EXIT_ON, ENV_RAISE_ON):
            m.delenv(name, raising=False)
        return run_sweep(toy_task, toy_configs(4, 2), cache_dir=tmp_path / "reference", executor="serial",
                         progress=False)


def test_resume_after_task_kills_the_sweep(tmp_path, clean_env):
    """The task of id 5 kills the sweep process (os._exit) the first time; the rerun computes only 5-7."""
    cache = tmp_path / "cache"
    env = {**os.environ, ENV_DIR: str(tmp_path), ENV_EXIT_ON: "5"}
    proc = subprocess.run([sys.executable, "-c", _sweep_script(cache, "serial", 1)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    configs = toy_configs(4, 2)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{task_key(toy_task, c)}.npz" for c in configs[:5])
    assert calls_by_id(tmp_path) == {i: 1 for i in range(6)}

    clean_env.setenv(ENV_DIR, str(tmp_path))
    clean_env.setenv(ENV_EXIT_ON, "5")  # the marker file makes the second call of id 5 succeed
    resumed = run_sweep(toy_task, configs, cache_dir=cache, executor="serial", progress=False)
    assert calls_by_id(tmp_path) == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 1, 7: 1}
    assert_same_results(resumed, _reference(tmp_path, clean_env))


def test_resume_after_sigkill_of_a_process_pool_sweep(tmp_path, clean_env):
    """SIGKILL a 2-worker sweep (and its workers) once 3 tasks are cached; rerun computes only the rest."""
    cache = tmp_path / "cache"
    env = {**os.environ, ENV_DIR: str(tmp_path), ENV_SLEEP: "0.25"}
    proc = subprocess.Popen([sys.executable, "-c", _sweep_script(cache, "processes", 2)], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and proc.poll() is None:
            if cache.exists() and len(list(cache.glob("*.npz"))) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stderr.read()!r}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker processes
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
        proc.stderr.close()

    configs = toy_configs(4, 2)
    cached_before = {i for i, c in enumerate(configs) if (cache / f"{task_key(toy_task, c)}.npz").exists()}
    assert 3 <= len(cached_before) < len(configs)
    for f in cache.glob("*.npz"):  # every result file is complete
        arrays, stored = load_result(f)
        stored.pop("provenance")
        assert f.name == f"{task_key(toy_task, stored)}.npz" and arrays["x"].shape == (4,)
    calls_before = calls_by_id(tmp_path)
    # results reached the disk while other tasks had not even started: saved as they finish, not at the end
    assert len(calls_before) < len(configs)

    clean_env.setenv(ENV_DIR, str(tmp_path))
    resumed = run_sweep(toy_task, configs, cache_dir=cache, executor="processes", max_workers=2, progress=False)
    new_calls = {i: calls_by_id(tmp_path).get(i, 0) - calls_before.get(i, 0) for i in range(len(configs))}
    assert new_calls == {i: 0 if i in cached_before else 1 for i in range(len(configs))}
    assert_same_results(resumed, _reference(tmp_path, clean_env))


def test_killed_sweep_leaves_no_orphan_workers(tmp_path, clean_env):
    """SIGKILL only the sweep's process: its pool workers notice the parent is gone and end within seconds."""
    cache = tmp_path / "cache"
    env = {**os.environ, ENV_DIR: str(tmp_path), ENV_SLEEP: "0.5"}
    proc = subprocess.Popen([sys.executable, "-c", _sweep_script(cache, "processes", 2)], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and not (cache.exists() and list(cache.glob("*.npz"))):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)                 # the parent alone, not its group
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        alive = True
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)                    # is anything of the session still running?
            except ProcessLookupError:
                alive = False
                break
            time.sleep(0.2)
        assert not alive, "pool workers outlived their killed parent"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_recompute_and_unreadable_cache_file(tmp_path, clean_env):
    clean_env.setenv(ENV_DIR, str(tmp_path / "marks"))
    configs = toy_configs(2, 1)
    first = run_sweep(toy_task, configs, cache_dir=tmp_path / "c", executor="serial", progress=False)
    run_sweep(toy_task, configs, cache_dir=tmp_path / "c", executor="serial", progress=False, recompute=True)
    assert calls_by_id(tmp_path / "marks") == {0: 2, 1: 2}
    (tmp_path / "c" / f"{task_key(toy_task, configs[1])}.npz").write_bytes(b"not a zip file")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        again = run_sweep(toy_task, configs, cache_dir=tmp_path / "c", executor="serial", progress=False)
    assert calls_by_id(tmp_path / "marks") == {0: 2, 1: 3}
    assert_same_results(first, again)


def test_progress_counts_cached_tasks_as_done(tmp_path, clean_env, capsys):
    configs = toy_configs()
    run_sweep(toy_task, configs, cache_dir=tmp_path, executor="serial", progress=True)
    err = capsys.readouterr().err
    assert "toy_task" in err and "6/6" in err
    run_sweep(toy_task, configs, cache_dir=tmp_path, executor="serial", progress=True)
    err = capsys.readouterr().err
    assert "6/6" in err and "cached=6" in err and "0/6" not in err


# --------------------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_failed_task_is_reported_after_the_others_are_saved(tmp_path, clean_env, executor):
    clean_env.setenv(ENV_DIR, str(tmp_path / "marks"))
    clean_env.setenv(ENV_RAISE_ON, "2")
    configs = toy_configs()
    with pytest.raises(SweepError, match=r"1 of 6 tasks .* failed") as info:
        run_sweep(toy_task, configs, cache_dir=tmp_path / "c", executor=executor, max_workers=2, progress=False)
    err = info.value
    assert [(i, c) for i, c, _ in err.failures] == [(2, configs[2])]
    assert isinstance(err.failures[0][2], RuntimeError) and isinstance(err.__cause__, RuntimeError)
    assert '"id":2' in str(err) and "toy failure on id 2" in str(err)
    assert len(list((tmp_path / "c").glob("*.npz"))) == 5
    # fixed: the rerun runs the failed task only
    clean_env.delenv(ENV_RAISE_ON)
    res = run_sweep(toy_task, configs, cache_dir=tmp_path / "c", executor=executor, max_workers=2, progress=False)
    assert calls_by_id(tmp_path / "marks") == {0: 1, 1: 1, 2: 2, 3: 1, 4: 1, 5: 1}
    assert [r["id"] for r in res] == list(range(6))


def test_result_that_is_not_a_dict_is_a_failure(tmp_path):
    with pytest.raises(SweepError, match="expected a dict") as info:
        run_sweep(not_a_dict_task, [{"a": 1}], cache_dir=tmp_path, executor="serial", progress=False)
    assert isinstance(info.value.failures[0][2], TypeError)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------------

def _nested():
    def task(config):
        return {}
    return task


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(configs=[]), r"configs: .*empty"),
        (dict(configs={"a": 1}), r"configs: expected a list of dicts"),
        (dict(configs=[{"a": 1}, [("a", 1)]]), r"configs\[1\]: each configuration must be a dict"),
        (dict(configs=[{"a": object()}]), r"configs\[0\]\['a'\]: object value .* not JSON-serialisable"),
        (dict(configs=[{"a": np.zeros(2)}]), r"not JSON-serialisable \(use a list\)"),
        (dict(configs=[{"a": {1, 2}}]), r"configs\[0\]\['a'\]: set"),
        (dict(configs=[{1: 2}]), r"configs\[0\]: keys must be strings"),
        (dict(executor="gpu"), r"executor: expected one of 'processes', 'threads', 'serial'.*'tcp://"),
        (dict(executor=4), r"executor: expected one of"),
        (dict(max_workers=0), r"max_workers: must be None or a positive int"),
        (dict(cache_dir=3), r"cache_dir: expected a directory path"),
        (dict(fn=lambda c: {}), r"fn: must be a top-level function"),
        (dict(fn=_nested()), r"fn: must be a top-level function"),
    ],
)
def test_bad_inputs(tmp_path, kwargs, match):
    args = dict(fn=toy_task, configs=[{"gamma": 0.0, "seed": 0, "id": 0}], cache_dir=tmp_path, executor="serial",
                progress=False)
    args.update(kwargs)
    fn = args.pop("fn")
    configs = args.pop("configs")
    with pytest.raises(ValueError, match=match):
        run_sweep(fn, configs, **args)


def test_bad_grid_and_key_inputs():
    with pytest.raises(ValueError, match="gamma: the axis is empty"):
        grid(gamma=[], seed=[0])
    with pytest.raises(ValueError, match="eta: an axis must be one-dimensional"):
        grid(eta=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"x\[0\]: .* not JSON-serialisable"):
        grid(x=[object()])
    with pytest.raises(ValueError, match="fn: must be a top-level function"):
        task_key(lambda c: c, {"a": 1})


def test_missing_dask_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(ImportError, match=r"pip install 'lrdecay\[dask\]'"):
        run_sweep(toy_task, toy_configs(1, 1), cache_dir=tmp_path, executor="tcp://127.0.0.1:1", progress=False)


def test_fully_cached_sweep_needs_no_executor(tmp_path, clean_env, monkeypatch):
    configs = toy_configs(2, 1)
    first = run_sweep(toy_task, configs, cache_dir=tmp_path, executor="serial", progress=False)
    monkeypatch.setitem(sys.modules, "distributed", None)  # no cluster and no dask: nothing to run anyway
    again = run_sweep(toy_task, configs, cache_dir=tmp_path, executor="tcp://127.0.0.1:1", progress=False)
    assert_same_results(first, again)


# --------------------------------------------------------------------------------------------------
# Dask
# --------------------------------------------------------------------------------------------------

def test_dask_local_cluster_matches_serial(tmp_path, clean_env):
    import distributed  # noqa: F401  (the dask extra, pinned in 'all')
    from distributed import Client, LocalCluster

    configs = toy_configs()
    serial = run_sweep(toy_task, configs, cache_dir=tmp_path / "serial", executor="serial", progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        by_address = run_sweep(toy_task, configs, cache_dir=tmp_path / "address", executor=cluster.scheduler_address,
                               progress=False)
        with Client(cluster) as client:
            by_client = run_sweep(toy_task, configs, cache_dir=tmp_path / "client", executor=client, progress=False)
            assert client.status == "running"  # a given client is left open
    assert_same_results(serial, by_address)
    assert_same_results(serial, by_client)
    assert sorted(p.name for p in (tmp_path / "address").iterdir()) == sorted(p.name for p in (tmp_path / "serial").iterdir())
