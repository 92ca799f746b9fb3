"""Retention: deletion one year after the programme ends at the latest (privacy notice)."""
