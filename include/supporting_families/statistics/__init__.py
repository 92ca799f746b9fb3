"""Anonymised programme statistics with statistical disclosure control (privacy notice)."""
