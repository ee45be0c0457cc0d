"""Datasets generated in process (no download) for the package's examples and docs.

- `hnn`: the Hamiltonian Neural Networks paper's mass-spring, pendulum and two-body data.
- `two_body`: the two-body problem's Hamiltonian, dynamics and starting orbits.
- `ode`: the fixed-step RK4 that integrates their true dynamics.
"""
