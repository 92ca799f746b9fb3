"""One login, one client key and one jail per partner on the demo sshd (sf_demo.sftp_server).

Each partner stands for another organisation's server: the council's DWP key must not reach the police's
or ONS's folders, nor log in as their login. Against the session's real sshd, through the product's
pinned client, with the connections the demo's secrets generator wrote.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sf_demo.sftp_server import LocalSftpServer, partner_login
from supporting_families.transport.sftp import (
    AuthenticationFailed,
    RemoteFolderMissing,
    SftpEndpoint,
    check_connectivity,
    list_names,
    open_session,
)
from tests.integration.platform_fixtures import PlatformEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("isolated_home")]


def _endpoint(env: PlatformEnv, agreement_id: str) -> SftpEndpoint:
    return env.endpoint(env.agreements[agreement_id])


def _require_jails(server: LocalSftpServer) -> None:
    # sshd can chroot and switch users only as root, which CI is; a non-root run has one shared login.
    assert server.jails, "partner jails need sshd started as root (CI runs as root)"


def test_each_partner_has_its_own_login_and_key(platform_env: PlatformEnv) -> None:
    _require_jails(platform_env.server)
    endpoints = {a.partner.code: platform_env.endpoint(a) for a in platform_env.agreements.values()}
    assert {code: e.username for code, e in endpoints.items()} == {
        code: partner_login(code) for code in endpoints
    }
    assert len({e.private_key_path for e in endpoints.values()}) == len(endpoints)


def test_the_dwp_key_cannot_list_the_police_folders(platform_env: PlatformEnv) -> None:
    _require_jails(platform_env.server)
    dwp = _endpoint(platform_env, "dwp-benefits-matching")
    police = platform_env.agreements["met-police-wider-help"]
    # Its own folders: yes.
    assert check_connectivity(dwp, ["dwp/inbox", "dwp/outbox"]).missing == ()
    # The police's, by their agreement's names or by climbing out of the jail: nothing there.
    for folder in (police.sftp.remote_inbox, police.sftp.remote_outbox, "met-police", "ons/inbox"):
        with pytest.raises(RemoteFolderMissing):
            list_names(dwp, folder, attempts=1)
    with open_session(dwp) as session:
        assert sorted(session.sftp.listdir("/")) == ["dwp", "inbox", "outbox"]
        for path in ("../met-police", "/../met-police/inbox", "/../../met-police/outbox"):
            with pytest.raises(OSError):
                session.sftp.listdir(path)
    # The folders exist and the police's own key lists them: the refusals above are the jail's.
    assert list_names(platform_env.endpoint(police), police.sftp.remote_inbox, attempts=1) == []


def test_the_dwp_key_cannot_log_in_as_the_police(platform_env: PlatformEnv) -> None:
    _require_jails(platform_env.server)
    dwp = _endpoint(platform_env, "dwp-benefits-matching")
    as_police = SftpEndpoint(
        dwp.host,
        dwp.port,
        partner_login("met-police"),
        host_key=dwp.host_key,
        private_key_path=dwp.private_key_path,
    )
    with pytest.raises(AuthenticationFailed):
        list_names(as_police, "met-police/inbox", attempts=1)


def test_no_other_local_account_can_read_a_partners_folders(platform_env: PlatformEnv) -> None:
    server = platform_env.server
    _require_jails(server)
    for login, top in (server.jails or {}).items():
        jail = server.root / top
        st = jail.stat()
        # sshd's chroot rule (root-owned, no group or other write), and no one but the login's group in.
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o750), login
        assert os.readlink(jail / top) == "."
        for box in ("inbox", "outbox"):
            if f"{top}/{box}" not in server.remote_dirs:
                continue  # a voluntary-sector agency has an outbox only (include/sources.yaml, inbound:)
            folder = Path(jail, box)
            owner = folder.stat()
            assert stat.S_IMODE(owner.st_mode) & 0o007 == 0, (login, box)
