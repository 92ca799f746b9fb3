"""Configuration: the data agreements, the sources and the criteria, each loaded by one strict YAML loader."""
