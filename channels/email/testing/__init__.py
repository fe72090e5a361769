"""Test helpers for the email channel: in-memory seams and a private Dovecot server."""
