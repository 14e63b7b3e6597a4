"""Reliability and security suite: faults over real HTTP, bad input, secret hygiene, safety rails.

A package (unlike the rest of tests/) so that its conftest does not shadow tests/conftest.py,
which other test modules import as `conftest`.
"""
