"""The test suite, one folder per step of the pipeline (see README, "Tests")."""
