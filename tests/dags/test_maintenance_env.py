"""The retention DAG's ``airflow db clean`` child gets the metadata database; the task itself stays blocked.

Airflow's task supervisor replaces a task's database setting with a placeholder that fails on use
(block_orm_access): a maintenance CLI started from the task would inherit it and exit 1.
"""

from __future__ import annotations

import airflow.sdk  # noqa: F401  (puts plugins/ on the path)

from sf_airflow.credentials import maintenance_env

BLOCKED = "airflow-db-not-allowed:///"


def test_the_connection_replaces_the_block_and_any_other_database_setting() -> None:
    environ = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": BLOCKED,
        "AIRFLOW__CORE__SQL_ALCHEMY_CONN": BLOCKED,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": "/bin/false",
        "PATH": "/usr/bin",
    }
    env = maintenance_env(environ, "postgresql://m:pw@127.0.0.1:5432/meta")
    assert env == {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://m:pw@127.0.0.1:5432/meta",
        "PATH": "/usr/bin",
    }


def test_without_a_connection_the_workers_own_command_setting_is_used() -> None:
    environ = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": BLOCKED,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": "cat /var/secrets/airflow-db-url",
    }
    assert maintenance_env(environ, None) == {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": "cat /var/secrets/airflow-db-url"
    }


def test_with_neither_the_block_is_taken_out_and_airflow_cfg_answers() -> None:
    assert maintenance_env({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": BLOCKED, "HOME": "/root"}, None) == {
        "HOME": "/root"
    }
