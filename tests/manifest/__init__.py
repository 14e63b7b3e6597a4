"""Manifests -> desired state: reading, validation, environment variables, warnings."""
