"""Benchmarks of the Workflow Engine; run them with `make bench` (`python -m bench`)."""
