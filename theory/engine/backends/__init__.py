"""The engine's backends: each holds one chunk of paths and supplies ``advance(k, K)`` and ``observe()``
(:class:`lrdecay.theory.engine.driver.Backend`). Only the modules here import numba or torch, and only
where they are installed (:mod:`.kernels` tries numba; :mod:`.torch` imports torch inside its functions).

* :mod:`.numpy` — any model, one step at a time for all paths of the chunk;
* :mod:`.numba` — the built-in model's steps, compiled (:mod:`.kernels`), or two BLAS products per step at
  large ``d`` (:mod:`.blas_step`);
* :mod:`.torch` — the built-in model's steps as tensor operations, CPU or CUDA.
"""
