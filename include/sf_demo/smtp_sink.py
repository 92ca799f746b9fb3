"""A local SMTP sink for the demo and the tests: accepts mail on 127.0.0.1 and keeps each message as a file.

Stands in for the council's mail relay, so the notifications the platform sends (rights deadlines) are
real SMTP conversations that a test can read back. Plain SMTP (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA,
RSET, NOOP, QUIT), no relay, no authentication; loopback only. Messages are written 0600 under the folder.

    python -m sf_demo.smtp_sink --port 8025 --folder var/mail     (runs until stopped)
"""

from __future__ import annotations

import argparse
import os
import socketserver
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def _reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode("ascii"))
        self.wfile.flush()

    def handle(self) -> None:
        self._reply("220 sf-demo-smtp-sink ready")
        recipients: list[str] = []
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            command = raw.decode("utf-8", "replace").strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._reply("250 sf-demo-smtp-sink")
            elif verb == "MAIL":
                recipients = []
                self._reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[-1].strip(" <>"))
                self._reply("250 OK")
            elif verb == "DATA":
                self._reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while True:
                    line = self.rfile.readline(1 << 20)
                    if not line or line in (b".\r\n", b".\n"):
                        break
                    lines.append(line[1:] if line.startswith(b"..") else line)
                self.server.keep(recipients, b"".join(lines))
                self._reply("250 OK: kept")
            elif verb in ("RSET", "NOOP"):
                self._reply("250 OK")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("502 not implemented")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, folder: Path) -> None:
        super().__init__((HOST, port), _Handler)
        self.folder = folder
        self._lock = threading.Lock()
        self._n = 0

    def keep(self, recipients: list[str], message: bytes) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._lock:
            self._n += 1
            name = f"{time.time_ns()}-{self._n}.eml"
        fd = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"X-Sink-Recipients: " + ", ".join(recipients).encode() + b"\r\n" + message)


class SmtpSink:
    """Start in a thread (``with SmtpSink(folder) as sink``); ``sink.port`` is where it listens."""

    def __init__(self, folder: Path, port: int = 0) -> None:
        self._server = _Server(port, folder)
        self.folder = folder
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def messages(self) -> list[bytes]:
        if not self.folder.exists():
            return []
        return [p.read_bytes() for p in sorted(self.folder.glob("*.eml"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--folder", type=Path, required=True)
    args = parser.parse_args()
    server = _Server(args.port, args.folder)
    server.serve_forever()


if __name__ == "__main__":
    main()
