"""Benchmarks of the tidings server, run as ``python -m bench [NAME]`` from the repository root.

They live outside the test suite because they take minutes, need a quiet machine to mean
anything, and report numbers rather than pass or fail.
"""
