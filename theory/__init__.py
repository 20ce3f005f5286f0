"""Theory of late learning-rate decay on the nonlinear model f(w; x) = ||w||^gamma w^T x."""
