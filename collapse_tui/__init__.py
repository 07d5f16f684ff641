"""collapse-tui: study interpretability collapse of sparse autoencoders under extreme sparsity."""

__version__ = "0.1.0"
