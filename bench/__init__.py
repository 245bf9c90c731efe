"""The farm's own benchmarks: `python -m bench` (see bench/run.py)."""

# The bare Celery baseline counts its finished no-ops here (bench/bare_app.py).
NOOP_COUNTER = "bench-noop-done"
