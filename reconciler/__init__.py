"""reconciler: declarative state for Alibaba Cloud API Gateway backend signatures."""

# The one place the version is written: the package metadata reads it from here at build time
# (pyproject.toml, [tool.setuptools.dynamic]), and a release tag must match it (the release workflow).
__version__ = "0.1.0"
