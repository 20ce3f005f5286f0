"""Planted science bugs: each one, applied alone to a scratch copy of the project, must make the default
test suite fail. The list is the contract of ``benchmarks/mutation_check.py`` (run by the slow test
``tests/test_mutations.py``).

Each entry: ``(name, file, original text, mutated text)``; the original text must occur exactly once in
the file.
"""

MUTATIONS = [
    # --- noise scales (sigma vs sigma^2, 1/n vs 1/sqrt n) ------------------------------------------------
    ("em default a = sigma/n instead of sigma^2/n", "theory/engine/setup.py",
     "a = sig**2 / n", "a = sig / n"),
    ("sgd noise coefficient without 1/sqrt(n)", "theory/engine/backends/numpy.py",
     "coef = e * noise.sigma / self.sqrt_n if noise.noisy else 0.0", "coef = e * noise.sigma if noise.noisy else 0.0"),
    ("em noise coefficient sqrt(eta a) instead of sqrt(eta a dt)", "theory/engine/backends/numpy.py",
     "coef = np.sqrt(e * noise.a * noise.dt) if noise.noisy else 0.0",
     "coef = np.sqrt(e * noise.a) if noise.noisy else 0.0"),
    ("label noise scaled by 1/n instead of 1/sqrt(n) in the model", "theory/models/nonlinear.py",
     "V = V + np.asarray(noise_coef) * xi / np.sqrt(self.n)", "V = V + np.asarray(noise_coef) * xi / self.n"),
    # --- the compiled kernels (the backend the engine picks by default) -----------------------------------
    ("kernel: sgd noise coefficient without 1/sqrt(n)", "theory/engine/backends/kernels.py",
     "cn = e * sigma / sqrt_n if noisy else 0.0", "cn = e * sigma if noisy else 0.0"),
    ("kernel: label noise added without the 1/sqrt(n) of J^T / sqrt(n)", "theory/engine/backends/kernels.py",
     "v = v + cn * xi[p, jj, i] / sqrt_n", "v = v + cn * xi[p, jj, i]"),
    ("kernel: sign of the radial term of D alpha", "theory/engine/backends/kernels.py",
     "u[c] = rg * u[c] + cw * w[c]", "u[c] = rg * u[c] - cw * w[c]"),
    ("kernel: minibatch step divided by n instead of b", "theory/engine/backends/kernels.py",
     "v = v * (-e / b)", "v = v * (-e / n)"),
    ("full-d kernel: label noise scaled by 1/n", "theory/engine/backends/blas_step.py",
     "V = V + np.asarray(coef) * xi / math.sqrt(self.n)", "V = V + np.asarray(coef) * xi / self.n"),
    # --- the model's geometry ------------------------------------------------------------------------
    ("gradient normalised by d instead of n", "theory/models/nonlinear.py",
     "return dalpha_apply(w, _times_XT(res, X) / X.shape[-2], gamma)",
     "return dalpha_apply(w, _times_XT(res, X) / X.shape[-1], gamma)"),
    ("sign of the radial term of D alpha in the engine increment", "theory/models/nonlinear.py",
     "U += (_radial(r, g) * wu) * W", "U -= (_radial(r, g) * wu) * W"),
    ("alpha inverse exponent -gamma/(gamma+2)", "theory/models/nonlinear.py",
     "-g / (g + 1.0)))", "-g / (g + 2.0)))"),
    ("Hessian trace on M with gamma^2 + gamma", "theory/models/nonlinear.py",
     "return _rpow(r, 2 * g) * fro2 / n + (g**2 + 2 * g) * y2 / (n * r**2)",
     "return _rpow(r, 2 * g) * fro2 / n + (g**2 + g) * y2 / (n * r**2)"),
    ("flatness condition with gamma + 1", "theory/models/nonlinear.py",
     "rhs = float((gamma + 2) * (y @ y) / np.sum(X**2))", "rhs = float((gamma + 1) * (y @ y) / np.sum(X**2))"),
    ("reduced test-loss offset without the 1/2", "theory/reduction.py",
     "offset = 0.5 * float(np.sum((problem.alpha_star - Q @ a_red) ** 2))",
     "offset = 1.0 * float(np.sum((problem.alpha_star - Q @ a_red) ** 2))"),
    # --- the quasistatic picture ---------------------------------------------------------------------
    ("plateau constant 1/2 instead of 1/4", "theory/quasistatic.py",
     "exact = 0.25 * eta * a * float(", "exact = 0.5 * eta * a * float("),
    ("drift along M with the wrong sign", "theory/quasistatic.py",
     """g = m.hessian_trace_grad(w, problem.X, problem.y, problem.gamma)
    return -0.25 * a * m.project_tangent(w, g, problem.X, problem.gamma)""",
     """g = m.hessian_trace_grad(w, problem.X, problem.y, problem.gamma)
    return 0.25 * a * m.project_tangent(w, g, problem.X, problem.gamma)"""),
    ("Phase I plateau band widened 30x", "theory/phases.py",
     "band: float = 3.0) -> dict:", "band: float = 90.0) -> dict:"),
    # --- time, schedules and sampling ---------------------------------------------------------------
    ("learning rate of step k+1 used at step k (off by one)", "theory/engine/driver.py",
     "self.rates.block(np.arange(k, k + K), self.c0, self.c1)",
     "self.rates.block(np.arange(k, k + K) + 1, self.c0, self.c1)"),
    ("cosine schedule that never decays", "theory/schedules.py",
     "frac = np.minimum(s, self.total_steps) / self.total_steps", "frac = 0 * s"),
    ("decay sweep decays at half the requested step", "theory/studies/decay.py",
     "schedules = [StepDecay(eta, int(k), factor) for k in ds for _ in range(paths_per_decay)]",
     "schedules = [StepDecay(eta, int(k) // 2, factor) for k in ds for _ in range(paths_per_decay)]"),
    ("minibatches drawn with replacement", "theory/engine/driver.py",
     "self.idx[p] = np.argsort(self.batch_gens[p].random((K, self.n)), axis=1)[:, :self.b]",
     "self.idx[p] = self.batch_gens[p].integers(0, self.n, (K, self.b))"),
    # --- the other models and the cyclic schedules --------------------------------------------------
    ("diagonal network: vjp with the wrong sign on v", "theory/models/diagonal.py",
     "return np.concatenate(np.broadcast_arrays(2 * u * G, -2 * v * G), axis=-1)",
     "return np.concatenate(np.broadcast_arrays(2 * u * G, 2 * v * G), axis=-1)"),
    ("diagonal network: Hessian trace with 2 instead of 4", "theory/models/diagonal.py",
     "return 4.0 * np.sum(self.col_norms2 * (u * u + v * v), axis=-1) / self.n",
     "return 2.0 * np.sum(self.col_norms2 * (u * u + v * v), axis=-1) / self.n"),
    ("triangular schedule that never comes back down", "theory/schedules.py",
     "f = np.where(x < 1, x, 2 - x)", "f = np.where(x < 1, x, 1.0)"),
    # --- the convex example and the statistics -------------------------------------------------------
    ("gradient flow without the factor 2 of the unnormalised loss", "theory/convex_dynamics.py",
     "return delta0 * np.exp(-2.0 * gam * t)", "return delta0 * np.exp(-gam * t)"),
    ("Lemma 2's gradient-flow bound weakened", "theory/convex.py",
     "bound_slow = eps * (1 - alpha) * float(np.min(ratios[small]))",
     "bound_slow = eps * (1 - 2 * alpha) * float(np.min(ratios[small]))"),
    ("Wilson interval replaced by the exact one", "theory/stats.py",
     'return _binom_ci(k, n, confidence, "wilson")', 'return _binom_ci(k, n, confidence, "exact")'),
]
