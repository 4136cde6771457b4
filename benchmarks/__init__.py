"""Benchmarks for taskloom (not part of the installed package)."""
