"""Benchmark scripts: each prints figures (medians, ratios against a baseline run in the same
process). Run from the repository root as ``.venv/bin/python -m bench.<name> ...``."""
