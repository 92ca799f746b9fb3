"""Airflow-facing code: defaults shared by every DAG, storage, assets, and hooks wrapping the core."""
