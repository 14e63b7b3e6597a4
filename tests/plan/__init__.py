"""(desired, snapshot) -> plan -> renderers: the differ, drift against a base, scan, output."""
