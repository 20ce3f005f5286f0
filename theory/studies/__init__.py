"""The studies: each ``run_*`` function takes its configuration and returns a result that saves and
loads (:class:`lrdecay.theory.io.Result`); none draws figures or parses arguments.

* :mod:`~lrdecay.theory.studies.decay` — decay-time sweeps, equal-budget schedules, the demo;
* :mod:`~lrdecay.theory.studies.drift` — the quasistatic drift ODE against label-noise SGD;
* :mod:`~lrdecay.theory.studies.gamma` — convergence to ``w_mn`` against gamma;
* :mod:`~lrdecay.theory.studies.convex_mc` — Nakkiran's Proposition 1 by Monte Carlo, Lemma 2 against K, Figure 1;
* :mod:`~lrdecay.theory.studies.grid` — a grid over (gamma, eta, decay step, seed) through :mod:`lrdecay.theory.sweep`;
* :mod:`~lrdecay.theory.studies.landscape` — the 2-D loss landscapes of the nonlinear model;
* :mod:`~lrdecay.theory.studies.checks` — direct numerical and symbolic checks.
"""
