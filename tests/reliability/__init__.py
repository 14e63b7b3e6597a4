"""Reliability and security suite: faults over real HTTP, bad input, secret hygiene, safety rails."""
