"""Timed runs on the real datasets; each module runs as `python -m benchmarks.<name>` from the repository root."""
