"""The studies: each ``run_*`` function takes its configuration and returns a result that saves and
loads (:class:`theory.io.Result`); none draws figures or parses arguments.

* :mod:`~theory.studies.decay` — decay-time sweeps, equal-budget schedules, the demo;
* :mod:`~theory.studies.drift` — the quasistatic drift ODE against label-noise SGD;
* :mod:`~theory.studies.gamma` — convergence to ``w_mn`` against gamma;
* :mod:`~theory.studies.convex_mc` — Nakkiran's Proposition 1 by Monte Carlo, Lemma 2 against K, Figure 1;
* :mod:`~theory.studies.grid` — a grid over (gamma, eta, decay step, seed) through :mod:`theory.sweep`;
* :mod:`~theory.studies.landscape` — the 2-D loss landscapes of the nonlinear model;
* :mod:`~theory.studies.checks` — direct numerical and symbolic checks.
"""
