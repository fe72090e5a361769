"""ivr room."""
