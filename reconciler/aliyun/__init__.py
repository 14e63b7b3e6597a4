"""HTTP client for the Alibaba Cloud API Gateway (CloudAPI) endpoint: signing, credentials, retries,
typed errors. It knows nothing about manifests."""

from reconciler.aliyun.client import ApiClient, validate_endpoint
from reconciler.aliyun.credentials import Credentials, CredentialSource, resolve_credential_source
from reconciler.aliyun.errors import (
    ApiError,
    AuthenticationError,
    CredentialsError,
    DeadlineExceeded,
    InvalidParameterError,
    NotFoundError,
    RepeatedCommitError,
    ServerError,
    ThrottlingError,
    TransportError,
    WriteNotAllowed,
)
from reconciler.vendor_rules import endpoint_for_region

__all__ = [
    "ApiClient",
    "ApiError",
    "AuthenticationError",
    "CredentialSource",
    "Credentials",
    "CredentialsError",
    "DeadlineExceeded",
    "InvalidParameterError",
    "NotFoundError",
    "RepeatedCommitError",
    "ServerError",
    "ThrottlingError",
    "TransportError",
    "WriteNotAllowed",
    "endpoint_for_region",
    "resolve_credential_source",
    "validate_endpoint",
]
