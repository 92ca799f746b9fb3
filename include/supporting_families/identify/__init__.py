"""Identification: the person register by record linkage, households, the six headline problems,
assessments."""
