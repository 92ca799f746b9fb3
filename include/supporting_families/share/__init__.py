"""Sharing under a data agreement: cohort, restrictions, pseudonyms, minimisation, packaging, delivery."""
