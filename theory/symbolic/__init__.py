"""Sympy derivations the numeric code is checked against: :mod:`theory.symbolic.nonlinear` (the
nonlinear model ``f(w; x) = ||w||^gamma w^T x``) and :mod:`theory.symbolic.convex` (Nakkiran's convex
example)."""
