"""The receive DAGs' sensor and their deadline alerts.

**Sensor.** The stock deferrable ``SFTPSensor`` is used as it is: its trigger's ``SFTPHookAsync`` (asyncssh)
turns the connection's ``host_key`` extra into the only known-hosts entry it trusts, and refuses any
other key (checked against the real sshd: the pinned key connects; a different key, or no pin and no
``known_hosts`` file, fails with ``HostKeyNotVerifiable`` and the trigger reports an error, so the task
fails visibly). What the stock sensor does *not* do is refuse a connection that switches checking off
(an extra that turns ``no_host_key_check`` on makes it trust any server, silently). :class:`PinnedSFTPSensor`
therefore checks the connection with the same rules as every other SFTP step of the platform
(``sf_airflow.sftp.endpoint_from_fields``: a pinned ``host_key``, checking on, a client key) before it
defers, and fails at once, without retries, when they do not hold. Nothing else changes, so the trigger
stays the provider's ``SFTPTrigger``.

**Reschedule mode, for a worker per partner.** A shared triggerer runs every partner's trigger, so it
would need every partner's SFTP connection. Where partners' secrets live only in their own workers'
backends (docs/ARCHITECTURE.md, "Credentials per partner"), the receive DAGs set ``SF_RETURN_SENSOR=
reschedule``: the sensor then pokes on the partner's own queue, one listing through the platform's pinned
client (``supporting_families.transport.list_names``, the same policy as delivery), and gives its worker
slot back between looks.

**Deadlines.** A return later than the agreement's ``returns.deadline_days`` after its delivery must raise a
visible alert rather than wait silently. Two Airflow mechanisms, both recorded in the audit ledger:

* :func:`return_deadline_missed`: the callback of a DAG-level ``DeadlineAlert`` (Airflow 3.1+) at
  ``DAGRUN_QUEUED_AT + deadline_days``. A receive run is queued when the share emits the delivery asset, so
  that is the delivery's deadline; the scheduler runs the callback (in the triggerer) only if the run is
  still going then, i.e. still waiting for the return. It logs an alert and records a ``reconciliation``
  entry with outcome ``deadline_missed``.
* :func:`return_not_received`: the sensor's ``on_failure_callback``. The sensor keeps waiting one more
  deadline period after the alert (a late return is still taken in automatically), then times out; the
  callback logs and records outcome ``no_return``, and the run fails.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncssh
from airflow.providers.sftp.hooks.sftp import SFTPHookAsync
from airflow.providers.sftp.sensors.sftp import SFTPSensor
from airflow.providers.sftp.triggers.sftp import SFTPTrigger
from airflow.sdk.exceptions import AirflowFailException

from sf_airflow.sftp import SftpConnectionError, sftp_endpoint
from supporting_families.transport import (
    ALLOWED_CIPHERS,
    ALLOWED_HOST_KEYS,
    ALLOWED_KEX,
    ALLOWED_MACS,
    list_names,
)

log = logging.getLogger(__name__)


#: Set while a :class:`PolicySFTPHookAsync` connects: only then does ``asyncssh.connect`` add the policy.
#: A context variable, because one triggerer runs many partners' triggers concurrently in one event loop.
_POLICY_ON: ContextVar[bool] = ContextVar("sf_ssh_policy_on", default=False)


async def _policy_connect(*args: Any, **config: Any) -> asyncssh.SSHClientConnection:
    real_connect = _policy_connect.real  # type: ignore[attr-defined]
    if not _POLICY_ON.get():
        conn: asyncssh.SSHClientConnection = await real_connect(*args, **config)
        return conn
    conn = await real_connect(
        *args,
        **{
            **config,
            "kex_algs": list(ALLOWED_KEX),
            "encryption_algs": list(ALLOWED_CIPHERS),
            "mac_algs": list(ALLOWED_MACS),
            "server_host_key_algs": list(ALLOWED_HOST_KEYS),
            "compression_algs": None,
        },
    )
    if not getattr(conn, "_strict_kex", False):
        conn.close()
        raise asyncssh.KeyExchangeFailed("the server did not agree on strict key exchange")
    return conn


# Installed once, for the process's life. Swapping ``asyncssh.connect`` in and out around each connection
# (as an earlier version did) breaks with concurrent triggers: a second trigger wraps the first one's
# wrapper ("got multiple values for keyword argument 'kex_algs'", seen in the Celery deployment test,
# tests/integration/celery), and a trigger restoring the original can leave another's connection
# without the policy.
if not hasattr(asyncssh.connect, "real"):
    _policy_connect.real = asyncssh.connect  # type: ignore[attr-defined]
    asyncssh.connect = _policy_connect  # type: ignore[assignment]


class PolicySFTPHookAsync(SFTPHookAsync):  # type: ignore[misc]
    """The provider's asyncssh hook, offering only the platform's SSH algorithms and requiring strict kex
    (the same policy as ``supporting_families.transport.sftp``)."""

    async def _get_conn(self) -> asyncssh.SSHClientConnection:
        # The provider builds the connection's options (host key pin, client key) itself; only the
        # algorithms are added, so the pinning stays the provider's tested code.
        token = _POLICY_ON.set(True)
        try:
            conn: asyncssh.SSHClientConnection = await super()._get_conn()
        finally:
            _POLICY_ON.reset(token)
        return conn


class PolicySFTPTrigger(SFTPTrigger):  # type: ignore[misc]
    """``SFTPTrigger`` over :class:`PolicySFTPHookAsync`."""

    def _get_async_hook(self) -> SFTPHookAsync:
        return PolicySFTPHookAsync(
            sftp_conn_id=self.sftp_conn_id, host=self.remote_host, no_host_key_check=self.no_host_key_check
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return (f"{__name__}.PolicySFTPTrigger", kwargs)


class PinnedSFTPSensor(SFTPSensor):
    """``SFTPSensor`` that refuses a connection without a pinned host key before it defers, and defers to
    :class:`PolicySFTPTrigger`."""

    def execute(self, context: Any) -> Any:
        try:
            sftp_endpoint(self.sftp_conn_id)
        except SftpConnectionError as exc:
            # A configuration fault: retrying cannot pin a key.
            raise AirflowFailException(str(exc)) from None
        if not self.deferrable:
            return super().execute(context)
        self.defer(
            timeout=timedelta(seconds=self.timeout),
            trigger=PolicySFTPTrigger(
                path=self.path,
                file_pattern=self.file_pattern,
                sftp_conn_id=self.sftp_conn_id,
                poke_interval=self.poke_interval,
                newer_than=self.newer_than,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Any) -> bool:
        """One look in the outbox (poke and reschedule modes) with the pinned client, on this worker."""
        names = list_names(sftp_endpoint(self.sftp_conn_id), self.path, attempts=1)
        found = [n for n in names if fnmatch.fnmatchcase(n, self.file_pattern or "*")]
        log.info("%s return(s) waiting in the outbox", len(found))
        return bool(found)


def _record(
    agreement_id: str, outcome: str, run_id: str | None, dag_id: str | None, task_id: str | None
) -> None:
    from sf_airflow.credentials import ledger
    from supporting_families.config import load_agreements
    from supporting_families.receive import RunInfo, deadline_entry

    agreement = {a.id: a for a in load_agreements(resolve=False)}[agreement_id]
    # Who acted: nobody; Airflow's deadline alert on the run (docs/ARCHITECTURE.md, "Who may see what").
    run = RunInfo(dag_id=dag_id, run_id=run_id, task_id=task_id, triggered_by="deadline_alert")
    with ledger() as book:
        book.append(
            deadline_entry(
                agreement,
                outcome="deadline_missed" if outcome == "deadline_missed" else "no_return",
                occurred_at=datetime.now(UTC),
                run=run,
            )
        )


async def return_deadline_missed(agreement_id: str, deadline_days: int, context: dict[str, Any]) -> None:
    """DeadlineAlert callback: the return is not in ``deadline_days`` after the delivery. Runs in the
    triggerer with a small context (the DAG run as the REST API shows it, and the deadline)."""
    dag_run = context.get("dag_run") or {}
    run_id, dag_id = dag_run.get("dag_run_id") or dag_run.get("run_id"), dag_run.get("dag_id")
    log.error(
        "DEADLINE ALERT: no return for %s within %s days of its delivery (run %s)",
        agreement_id,
        deadline_days,
        run_id,
    )
    await asyncio.to_thread(_record, agreement_id, "deadline_missed", run_id, dag_id, None)
    # An alert that alerts nobody is a log line: the sf_smtp recipients are told (ids and counts only).
    from sf_airflow.notify import email_dpo

    await asyncio.to_thread(
        email_dpo,
        context,
        subject=f"Return deadline missed: {agreement_id}",
        rows=[
            {
                "agreement": agreement_id,
                "deadline_days": deadline_days,
                "run": run_id or "",
                "dag": dag_id or "",
            }
        ],
    )


def return_not_received(agreement_id: str, context: Any) -> None:
    """The sensor's on_failure_callback (bound to its agreement with functools.partial): record that
    waiting ended without a return. Only for a timeout: a connection or host-key failure says itself."""
    from airflow.sdk.exceptions import AirflowSensorTimeout

    exception = context.get("exception")
    if not isinstance(exception, AirflowSensorTimeout):
        return
    ti = context["ti"]
    log.error("DEADLINE ALERT: %s: stopped waiting for the return of %s", ti.dag_id, agreement_id)
    _record(agreement_id, "no_return", ti.run_id, ti.dag_id, ti.task_id)
