"""Benchmarks of cvas (`make bench`): figures printed, never asserted."""
