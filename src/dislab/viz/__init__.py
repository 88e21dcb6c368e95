"""dislab.viz."""
