"""A throwaway Dovecot IMAP server on loopback (Debian's dovecot-imapd), for the IMAP polling tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 100
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


@dataclass
class Dovecot:
    root: Path
    port: int
    user: str = "support@shop.test"
    password: str = "imap-pass-123"

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    def stop(self) -> None:
        subprocess.call(
            ["dovecot", "-c", str(self.conf), "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=20,
        )
        time.sleep(0.3)
        shutil.rmtree(self.root, ignore_errors=True)


def available() -> bool:
    return shutil.which("dovecot") is not None


def start() -> Dovecot:
    root = Path(tempfile.mkdtemp(prefix="cd-dovecot-", dir="/tmp"))
    os.chmod(root, 0o755)  # noqa: S103 - dovecot (not root) must traverse the test mailbox dir
    port = free_port()
    d = Dovecot(root, port)
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir()
    shutil.chown(root / "mail", "dovecot", "dovecot")
    (root / "passwd").write_text(f"{d.user}:{{PLAIN}}{d.password}\n")
    d.conf.write_text(CONFIG.format(root=root, port=port))
    # dovecot daemonises: no pipes, or waiting for their EOF would wait for the daemon.
    with open(root / "start.log", "wb") as out:
        code = subprocess.call(
            ["dovecot", "-c", str(d.conf)], stdout=out, stderr=out, stdin=subprocess.DEVNULL, timeout=20
        )
    if code != 0:
        raise RuntimeError(f"dovecot did not start: {(root / 'start.log').read_text()}")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(100).startswith(b"* OK"):
                    return d
        except OSError:
            time.sleep(0.1)
    log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
    d.stop()
    raise RuntimeError(f"dovecot did not answer on port {port}: {log[-2000:]}")
