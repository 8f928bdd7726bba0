"""Benchmark harness: drives the local stack, samples it, and compares it with its ceilings.

Run with ``python -m bench``. Results are JSON (``bench.results``) so that runs on different
machines or commits can be compared; ``bench.report`` renders them as a table and a chart.
"""
