"""channels room."""
