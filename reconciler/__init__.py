"""reconciler: declarative state for Alibaba Cloud API Gateway backend signatures."""

__version__ = "0.1.0"
