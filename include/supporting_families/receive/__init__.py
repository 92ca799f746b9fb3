"""Receiving partners' returns: fetch, verify, validate, reconcile against what was sent, merge."""
