"""Sympy derivations the numeric code is checked against: :mod:`lrdecay.theory.symbolic.nonlinear` (the
nonlinear model ``f(w; x) = ||w||^gamma w^T x``) and :mod:`lrdecay.theory.symbolic.convex` (Nakkiran's convex
example)."""
