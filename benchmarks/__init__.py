"""fastbp benchmarks: the asv suite (bench_epoch.py) and the peer runner (peers.py).

The workloads and their data are defined once, in workloads.py, after shared/BENCHMARKS.md.
"""
