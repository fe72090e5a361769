"""onestop room."""
