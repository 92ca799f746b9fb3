"""Checks shared by ingest and receive: file-level CSV rules and lazy row validation."""
