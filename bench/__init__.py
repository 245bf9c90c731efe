"""The farm's own benchmarks: `python -m bench` (see bench/run.py)."""
