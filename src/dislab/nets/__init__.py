"""dislab.nets."""
