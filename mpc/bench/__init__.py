"""Benchmarks for researchers: `smpc bench` (run.py), the end-to-end workloads (e2e.py), the
cost model (costmodel.py), tables and plots (report.py) and the MPyC side-by-side
(compare_mpyc.py)."""
