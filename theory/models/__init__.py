"""Further overparameterized models on the same engine (one module each, over :mod:`lrdecay.theory.models.base`):

* :mod:`lrdecay.theory.models.diagonal` — the diagonal linear network ``beta = u * u - v * v``;
* :mod:`lrdecay.theory.models.two_layer` — the two-layer linear network ``beta = W_1^T w_2`` (hidden width h).

The nonlinear model of the paper, ``f(w; x) = ||w||^gamma w^T x``, is :mod:`lrdecay.theory.models.nonlinear` (it predates
this layer and has its own fused increment and invariant-subspace reduction).
"""
