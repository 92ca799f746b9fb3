"""Supporting Families data-sharing platform: the core.

Pure Python over Arrow and pandas tables. Nothing in this package imports Airflow: the DAGs in ``dags/``
and the hooks in ``plugins/`` call these functions, so every rule can be tested without a scheduler.
"""
