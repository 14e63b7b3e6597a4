"""Promises about the repository and the command line as a whole."""
