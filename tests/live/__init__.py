"""API -> fetcher -> snapshot: the client, signing, credentials, pacing, and fidelity to the vendor's SDKs."""
