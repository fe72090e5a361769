"""agent_console room."""
