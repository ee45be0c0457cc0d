"""Datasets generated in process (no download) for the package's examples and docs."""
