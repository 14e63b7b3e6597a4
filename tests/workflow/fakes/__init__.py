"""Stand-ins and observers for the workflow tests."""
