"""Cluster policy: every DAG's ``access_control`` follows from the one role -> DAG mapping.

Airflow imports ``airflow_local_settings`` from the plugins folder (it is on ``sys.path``) in every
component. The mapping is :data:`sf_airflow.access.DAG_RULES`; a DAG file never names a role.
"""

from __future__ import annotations

from typing import Any

from sf_airflow.access import access_control_for

__all__ = ["dag_policy"]


def dag_policy(dag: Any) -> None:
    """Give ``dag`` the DAG-level rights the roles' rules grant (none: global rights only)."""
    control = access_control_for(dag.dag_id, dag.tags or ())
    if control is not None:
        dag.access_control = control
