"""dislab.train."""
