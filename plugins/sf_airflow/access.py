"""Who may see what: the platform's roles, its own pages' permissions, and which role may run which DAG.

One central mapping. The roles and their permissions are synced into the FAB auth manager by
``scripts/airflow_access.py roles`` (set-up and the test command run it before any DAG is parsed: Airflow
syncs a DAG's ``access_control`` only to roles that exist). Each DAG's ``access_control`` is set from
:data:`DAG_RULES` by the cluster policy in ``plugins/airflow_local_settings.py``, so a new DAG whose id or
tags match a rule (``rights_*`` for the DPO) gets its rights with no change here or in the DAG file.

Cheap to import: the DAG policy runs at parse time, so FAB and the API server are imported only inside
the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

ADMIN: Final = "Admin"
#: The data engineers: FAB's built-in Op role (run and watch every DAG, connections, pools).
OP: Final = "Op"
AUDITOR: Final = "Auditor"
PRACTITIONER: Final = "Practitioner"
DPO: Final = "DPO"
VIEWER: Final = "Viewer"
ROLES: Final = (ADMIN, OP, AUDITOR, PRACTITIONER, DPO, VIEWER)

#: The platform's own pages, each a FAB resource checked with ``is_authorized_custom_view``.
LEDGER_CONSOLE: Final = "Disclosure Ledger"
WORKLIST: Final = "Practitioner Worklist"
DISCLOSURE_LOOKUP: Final = "Disclosure Lookup"
#: Who may see a staff id resolved to the login it stands for.
STAFF_NAMES: Final = "Staff Names"
CUSTOM_VIEWS: Final = (LEDGER_CONSOLE, WORKLIST, DISCLOSURE_LOOKUP, STAFF_NAMES)

_READ: Final = "can_read"
_EDIT: Final = "can_edit"
_CREATE: Final = "can_create"
_MENU: Final = "menu_access"

#: What every signed-in role needs to use the UI at all (FAB resource names).
_BASE_UI: Final[tuple[tuple[str, str], ...]] = (
    (_READ, "Website"),
    (_READ, "My Profile"),
    (_EDIT, "My Profile"),
    (_READ, "My Password"),
    (_EDIT, "My Password"),
    (_MENU, "Browse"),
    (_MENU, "DAGs"),
)
#: Read the run history of every DAG (FAB's Viewer, less XCom: an auditor reads runs and logs).
_RUN_HISTORY: Final[tuple[tuple[str, str], ...]] = (
    (_READ, "DAGs"),
    (_READ, "DAG Dependencies"),
    (_READ, "DAG Code"),
    (_READ, "DAG Runs"),
    (_READ, "DAG Versions"),
    (_READ, "DAG Warnings"),
    (_READ, "Assets"),
    (_READ, "Task Instances"),
    (_READ, "Task Logs"),
    (_READ, "Jobs"),
    (_READ, "ImportError"),
    (_MENU, "DAG Runs"),
    (_MENU, "Assets"),
    (_MENU, "Task Instances"),
)

#: The platform's roles that FAB does not build in, with exactly these global permissions (DAG-level
#: ones come from :data:`DAG_RULES`). Admin also gets every custom view; Op and Viewer stay FAB's own.
CUSTOM_ROLE_PERMISSIONS: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    AUDITOR: (*_BASE_UI, *_RUN_HISTORY, (_READ, LEDGER_CONSOLE), (_READ, STAFF_NAMES)),
    PRACTITIONER: (*_BASE_UI, (_READ, WORKLIST), (_CREATE, WORKLIST)),
    DPO: (*_BASE_UI, (_READ, DISCLOSURE_LOOKUP)),
}
ADMIN_EXTRA_PERMISSIONS: Final = tuple((action, view) for view in CUSTOM_VIEWS for action in (_READ, _CREATE))

#: Trigger one DAG and read its runs (FAB: edit on the DAG and create on its runs, see
#: FabAuthManager.is_authorized_dag).
_TRIGGER: Final[Mapping[str, Collection[str]]] = {
    "DAGs": frozenset({_READ, _EDIT}),
    "DAG Runs": frozenset({_READ, _CREATE}),
}


@dataclass(frozen=True)
class DagRule:
    """``role`` gets ``rights`` on every DAG for which ``matches(dag_id, tags)`` is true."""

    role: str
    rights: Mapping[str, Collection[str]]
    matches: Callable[[str, Collection[str]], bool]
    description: str


#: The one role -> DAG mapping. Op and Auditor need none: their rights are global (every DAG).
DAG_RULES: Final[tuple[DagRule, ...]] = (
    DagRule(
        PRACTITIONER,
        _TRIGGER,
        lambda dag_id, _tags: dag_id == "confirm_assessment",
        "confirm_assessment: a practitioner records a decision",
    ),
    DagRule(
        DPO,
        _TRIGGER,
        lambda dag_id, tags: dag_id.startswith("rights_") or "rights" in tags,
        "every rights_* DAG (or one tagged rights): the data subjects' rights",
    ),
)


def access_control_for(
    dag_id: str, tags: Iterable[str], rules: Iterable[DagRule] = DAG_RULES
) -> dict[str, dict[str, set[str]]] | None:
    """The ``access_control`` a DAG gets from the rules (None: global rights only)."""
    tag_set = frozenset(tags)
    control: dict[str, dict[str, set[str]]] = {}
    for rule in rules:
        if rule.matches(dag_id, tag_set):
            role = control.setdefault(rule.role, {})
            for resource, actions in rule.rights.items():
                role.setdefault(resource, set()).update(actions)
    return control or None


def sync_roles(security_manager: Any) -> dict[str, int]:
    """Create FAB's built-in roles and ours, and give ours exactly their global permissions.

    DAG-level permissions (``DAG:<id>``, ``DAG Run:<id>``) are left alone: the DAG processor syncs them
    from each DAG's ``access_control``. Returns the number of global permissions per role.
    """
    security_manager.sync_roles()
    counts: dict[str, int] = {}
    wanted_by_role: dict[str, tuple[tuple[str, str], ...]] = dict(CUSTOM_ROLE_PERMISSIONS)
    for name, wanted in wanted_by_role.items():
        role = security_manager.find_role(name) or security_manager.add_role(name)
        wanted_set = set(wanted)
        for action, resource in sorted(wanted_set):
            security_manager.add_permission_to_role(
                role, security_manager.create_permission(action, resource)
            )
        for perm in list(role.permissions):
            pair = (perm.action.name, perm.resource.name)
            dag_level = perm.resource.name.startswith(("DAG:", "DAG Run:"))
            if pair not in wanted_set and not dag_level:
                security_manager.remove_permission_from_role(role, perm)
        counts[name] = len(wanted_set)
    admin = security_manager.find_role(ADMIN)
    for action, resource in ADMIN_EXTRA_PERMISSIONS:
        security_manager.add_permission_to_role(admin, security_manager.create_permission(action, resource))
    return counts


def is_authorized_view(user: Any, resource: str, method: Literal["GET", "POST"] = "GET") -> bool:
    """Whether the auth manager lets ``user`` use the platform page ``resource`` with ``method``."""
    from airflow.api_fastapi.app import get_auth_manager

    return bool(
        get_auth_manager().is_authorized_custom_view(method=method, resource_name=resource, user=user)
    )


def require_view(resource: str, method: Literal["GET", "POST"] = "GET") -> Any:
    """A FastAPI dependency: the signed-in user (401 without a login), 403 unless authorised for
    ``resource``. Plugin routes are not protected by Airflow by default; every route depends on this."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, HTTPException

    async def check(user: Any = Depends(get_user)) -> Any:  # noqa: B008 - FastAPI's idiom
        if not is_authorized_view(user, resource, method):
            raise HTTPException(status_code=403, detail=f"Forbidden: your role may not use {resource}")
        return user

    return Depends(check)


STAFF_ID_KEY_CONN_ID: Final = "sf_staff_id_key"


def staff_id_key(*, in_task: bool = True) -> bytes:
    """The key of pseudonymous staff ids: the connection ``sf_staff_id_key``'s password (hex). A task
    asks through the Task SDK; the API server (the platform's pages) reads its own secrets backends."""
    if in_task:
        from airflow.sdk import BaseHook

        password = BaseHook.get_connection(STAFF_ID_KEY_CONN_ID).password
    else:
        from airflow.models.connection import Connection

        password = Connection.get_connection_from_secrets(STAFF_ID_KEY_CONN_ID).password
    return bytes.fromhex(password or "")


def staff_id_of(username: str) -> str:
    """The pseudonymous staff id the ledger records for the login ``username`` (in the API server)."""
    from supporting_families.audit import staff_id

    return staff_id(staff_id_key(in_task=False), username)


def staff_names(usernames: Iterable[str] | None = None) -> dict[str, str]:
    """Each staff id the ledger may hold, resolved to the login it stands for (in the API server).

    Resolved at view time, in the controller, from the auth manager's user table and the staff id key:
    the ledger itself never holds a name (supporting_families.audit.actors). ``usernames`` defaults to
    every FAB user; only a page whose reader holds :data:`STAFF_NAMES` calls this."""
    from supporting_families.audit import staff_id

    if usernames is None:
        from airflow.providers.fab.auth_manager.models import User
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            usernames = [str(u) for u in session.scalars(select(User.username)) if u]
    key = staff_id_key(in_task=False)
    return {staff_id(key, name): name for name in usernames}


def run_actor(dag_run: Any) -> str:
    """``triggered_by`` for a run's ledger entries: the staff id of ``dag_run.triggering_user_name`` if a
    person triggered it, else the schedule or the asset event (the run type)."""
    from supporting_families.audit import actor

    user = getattr(dag_run, "triggering_user_name", None)
    run_type = getattr(dag_run, "run_type", None)
    run_type_text = str(getattr(run_type, "value", run_type)) if run_type is not None else None
    return actor(staff_id_key() if user else None, user, run_type_text)
