"""Helpers the test folders share: no tests here, and no fixtures (those live in tests/conftest.py)."""
