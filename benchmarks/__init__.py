"""Pinion benchmarks: each ``bench_*.py`` module prints a table and writes JSON to ``benchmarks/results/``."""
