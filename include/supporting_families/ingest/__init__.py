"""Ingest: read, validate, standardise and quarantine the departments' extracts."""
