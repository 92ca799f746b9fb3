"""The store: one base URI, atomic private writes, the layout of every path, the tables' schemas."""
