"""The studies: each ``run_*`` function takes its configuration (a frozen dataclass with ``validate()``) and
returns a result that saves and loads (:class:`lrdecay.theory.io.Result`); none draws figures or parses
arguments. The command line and the report find them through one table, :mod:`lrdecay.studies_table`.

The nonlinear model (docs/science.md, §1):

* :mod:`~lrdecay.theory.studies.decay` — decay-time sweeps, equal-budget schedules, the demo;
* :mod:`~lrdecay.theory.studies.drift` — the quasistatic drift ODE against label-noise SGD;
* :mod:`~lrdecay.theory.studies.gamma` — convergence to ``w_mn`` against gamma;
* :mod:`~lrdecay.theory.studies.landscape` — the 2-D loss landscapes;
* :mod:`~lrdecay.theory.studies.grid` — a grid over (gamma, eta, decay step, seed) through :mod:`lrdecay.theory.sweep`;
* :mod:`~lrdecay.theory.studies.checks` — direct numerical and symbolic checks.

The open questions (docs/open_questions.md):

* :mod:`~lrdecay.theory.studies.rate_law` — the Phase II drift time against gamma, ``||w0||`` and ``n/d``;
* :mod:`~lrdecay.theory.studies.cyclic` — cyclic schedules beside the others at an equal budget;
* :mod:`~lrdecay.theory.studies.discrete_eta` — the quasistatic picture's errors against the learning rate;
* :mod:`~lrdecay.theory.studies.model_decay` — SGD against the drift ODE and a late-decay sweep on any model of
  :mod:`lrdecay.theory.models` (shared by the next two);
* :mod:`~lrdecay.theory.studies.diagonal` — the diagonal linear network and the min-l1 interpolator;
* :mod:`~lrdecay.theory.studies.two_layer` — the two-layer linear network and X-balance;
* :mod:`~lrdecay.theory.studies.drift_any` — any model given as ``f(theta, X)``, by automatic differentiation.

Nakkiran (2020), the convex example (docs/convex.md):

* :mod:`~lrdecay.theory.studies.convex_mc` — Proposition 1 by Monte Carlo, Lemma 2 against K, Figure 1.
"""
