import numpy as np

from lrdecay.theory.studies.grid import GridConfig, decay_task, run_grid


def test_grid_same_results_serial_and_two_processes_and_cached(tmp_path):
    cfg = GridConfig(gammas=(0.0, 1.0), decay_steps=(0, 3000), seeds=(0,), d=20, n=5, phase3_steps=5000, paths=2)
    a = run_grid(cfg, tmp_path / "a", executor="serial", progress=False).rows
    b = run_grid(cfg, tmp_path / "b", executor="processes", workers=2, progress=False).rows
    assert [r["final_test_mean"] for r in a] == [r["final_test_mean"] for r in b]
    # later decay helps for gamma = 1, not for gamma = 0 (same instance, same seed)
    by = {(r["gamma"], r["decay_step"]): r["final_test_mean"] for r in a}
    assert by[(1.0, 3000)] < by[(1.0, 0)]
    assert abs(by[(0.0, 3000)] - by[(0.0, 0)]) < 1e-3 * by[(0.0, 0)]
    # a rerun reads the cache: same numbers, and no task function runs (cache files untouched)
    files = sorted((tmp_path / "a" / "cache").glob("*.npz"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    c = run_grid(cfg, tmp_path / "a", executor="serial", progress=False).rows
    assert [r["final_test_mean"] for r in c] == [r["final_test_mean"] for r in a]
    assert [f.stat().st_mtime_ns for f in files] == mtimes and len(files) == 4


def test_task_noise_seed_depends_on_whole_config():
    base = dict(gamma=1.0, eta=0.02, decay_step=0, seed=0, d=10, n=3, sigma=0.3, factor=0.1, phase3_steps=10, paths=1)
    s1 = decay_task(base)["noise_seed"]
    s2 = decay_task(dict(base, decay_step=5))["noise_seed"]
    assert s1 != s2 and decay_task(base)["noise_seed"] == s1
    assert np.isfinite(decay_task(base)["final_test"]).all()


def test_diverged_tasks_carry_a_status_not_numbers(tmp_path):
    cfg = GridConfig(gammas=(1.0,), etas=(50.0,), decay_steps=(0,), seeds=(0,), d=20, n=5, phase3_steps=200, paths=2)
    res = run_grid(cfg, tmp_path, executor="serial", progress=False)
    row = res.rows[0]
    assert row["status"].startswith("diverged at step") and np.isnan(row["final_test_mean"])
    assert res.n_diverged == 1 and "diverged" in res.table()
    again = run_grid(cfg, tmp_path, executor="serial", progress=False)   # from the cache: the same status
    assert again.rows[0]["status"] == row["status"]


def test_grid_is_validated_before_dispatch(tmp_path):
    import pytest
    with pytest.raises(ValueError, match=r"etas must be a non-empty list of finite numbers > 0"):
        run_grid(GridConfig(etas=(0.0,)), tmp_path, executor="processes", progress=False)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
