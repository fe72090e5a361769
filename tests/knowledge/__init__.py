"""Tests of the knowledge room (knowledge base and search)."""
