"""Live state -> manifests."""
