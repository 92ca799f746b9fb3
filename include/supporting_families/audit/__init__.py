"""The audit ledger: append-only, hash-chained, anchored outside its database; nothing personal in it."""
