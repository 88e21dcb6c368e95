"""dislab.study."""
