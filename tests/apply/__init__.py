"""Plan -> apply: order, deletes, interruption, saved plans."""
