"""Hand-written JAX and PyTorch (CPU) versions of the benchmarked model (`benchmarks/spec.py`).

Each module offers the model in its framework's idiomatic best form, with dF/dh either by the
framework's autodiff (`state_gradient="autodiff"`) or written out (`"by_hand"`). They import
only their framework and NumPy; `pip install -e ".[bench]"` installs both frameworks.
"""
