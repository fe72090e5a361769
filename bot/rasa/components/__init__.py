"""Custom Rasa components for the OneStop bot (loaded by Rasa inside bot/.venv)."""
