"""Benchmarks run by `make bench`: figures and ratios against baselines run in the same
process, because absolute times on shared machines mean little."""
