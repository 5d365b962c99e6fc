"""Performance benchmarks (scripts people run, not tests): `python -m benchmarks.serving`, `python -m
benchmarks.training`. Results are written into benchmarks/README.md."""
