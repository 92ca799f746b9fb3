"""Roles and demo users in Airflow's FAB auth manager.

    python scripts/airflow_access.py roles                    the platform's roles and their permissions
    python scripts/airflow_access.py demo-users --secrets-dir var/secrets
                                                              one demo user per role, passwords generated

Run after ``airflow db migrate`` and ``airflow fab-db migrate`` and before any DAG is parsed (Airflow
syncs a DAG's ``access_control`` only to roles that exist). The demo users' passwords are written to
``<secrets-dir>/airflow-users.json`` (0600) and printed nowhere. The staff id key (the connection
``sf_staff_id_key``) is generated beside them and added to the local secrets backend's connections file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from sf_airflow.access import ROLES, STAFF_ID_KEY_CONN_ID, sync_roles  # noqa: E402
from sf_demo.secrets import new_secret_hex, new_secret_text  # noqa: E402

#: One demo login per role: the role in lower case (never a person's name).
DEMO_USERS = {role: role.lower() for role in ROLES}
USERS_FILE = "airflow-users.json"
STAFF_KEY_FILE = "staff-id-key.hex"


def _write_private(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _appbuilder() -> Any:
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    return get_application_builder()


def cmd_roles() -> int:
    with _appbuilder() as appbuilder:
        counts = sync_roles(appbuilder.sm)
    print(json.dumps({"roles": counts}))
    return 0


def _ensure_staff_key(secrets_dir: Path) -> None:
    key_file = secrets_dir / STAFF_KEY_FILE
    if not key_file.exists():
        _write_private(key_file, new_secret_hex(32))
    connections_file = secrets_dir / "connections.json"
    connections = json.loads(connections_file.read_text()) if connections_file.exists() else {}
    wanted = {"conn_type": "generic", "password": key_file.read_text().strip()}
    if connections.get(STAFF_ID_KEY_CONN_ID) != wanted:
        connections[STAFF_ID_KEY_CONN_ID] = wanted
        _write_private(connections_file, json.dumps(connections, indent=2, sort_keys=True))


def cmd_demo_users(secrets_dir: Path) -> int:
    users_file = secrets_dir / USERS_FILE
    passwords: dict[str, str] = json.loads(users_file.read_text()) if users_file.exists() else {}
    with _appbuilder() as appbuilder:
        sm = appbuilder.sm
        for role_name, username in DEMO_USERS.items():
            role = sm.find_role(role_name)
            if role is None:
                raise SystemExit(f"role {role_name} is missing: run '{sys.argv[0]} roles' first")
            password = passwords.get(username) or new_secret_text(18)
            user = sm.find_user(username=username)
            if user is None:
                sm.add_user(username, role_name, "demo", f"{username}@demo.invalid", role, password)
            else:
                user.roles = [role]
                sm.update_user(user)
                sm.reset_password(user.id, password)
            passwords[username] = password
    _write_private(users_file, json.dumps(passwords, indent=2, sort_keys=True))
    _ensure_staff_key(secrets_dir)
    # Counts only: the passwords are in the file, never on a terminal or in a log.
    print(json.dumps({"demo_users": len(passwords), "file": str(users_file)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("roles")
    users = sub.add_parser("demo-users")
    users.add_argument("--secrets-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "roles":
        return cmd_roles()
    return cmd_demo_users(args.secrets_dir)


if __name__ == "__main__":
    raise SystemExit(main())
