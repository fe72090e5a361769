"""A private, throw-away Dovecot IMAP server for tests.

Nothing here touches the system's own Dovecot configuration: the server gets its own
config file, run directory, maildir and user database in a temporary directory, listens on
127.0.0.1 on a free port and is stopped (and the directory removed) when the test ends.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DOVECOT_BINARY = Path("/usr/sbin/dovecot")


class DovecotUnavailable(RuntimeError):
    """Dovecot is not installed and could not be installed."""


def ensure_dovecot_installed() -> Path:
    """Install Debian's `dovecot-imapd` if `/usr/sbin/dovecot` is missing; return the binary.

    Idempotent: a no-op when the binary is there. Needs root (apt-get) the first time.
    """
    if DOVECOT_BINARY.exists():
        return DOVECOT_BINARY
    if os.geteuid() != 0:
        raise DovecotUnavailable("dovecot is not installed and we are not root to apt-get it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # The Debian package starts the system-wide service; policy-rc.d in containers refuses
    # that, and our tests never talk to it anyway: each test runs its own instance.
    result = subprocess.run(
        ["/usr/bin/apt-get", "install", "-y", "--no-install-recommends", "dovecot-imapd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 or not DOVECOT_BINARY.exists():
        raise DovecotUnavailable(f"apt-get install dovecot-imapd failed: {result.stderr[-2000:]}")
    return DOVECOT_BINARY


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DovecotServer:
    """A running private Dovecot; `stop()` ends it and removes its directory."""

    host: str
    port: int
    user: str
    password: str
    root: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_text(self) -> str:
        """Dovecot's log so far (for assertion messages)."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and delete its temporary directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


def start_dovecot(user: str = "citizen-desk") -> DovecotServer:
    """Write a private dovecot.conf, start `dovecot -F -c conf` and wait until IMAP answers."""
    password = secrets.token_urlsafe(16)
    binary = ensure_dovecot_installed()
    root = Path(tempfile.mkdtemp(prefix="onestop-dovecot-"))
    # Login and mail processes drop privileges; they must be able to traverse the directory.
    root.chmod(0o755)
    port = free_port()
    if os.geteuid() == 0:
        # Dovecot refuses to run mail processes as root; `nobody` owns the maildir instead,
        # and the unprivileged helpers are the users Debian's package creates.
        mail_user = pwd.getpwnam("nobody")
        internal_user, login_user = "dovecot", "dovenull"
    else:
        mail_user = pwd.getpwuid(os.geteuid())
        internal_user = login_user = mail_user.pw_name
    mail_dir = root / "mail"
    mail_dir.mkdir()
    if os.geteuid() == 0:
        os.chown(mail_dir, mail_user.pw_uid, mail_user.pw_gid)
    (root / "passwd").write_text(f"{user}:{{PLAIN}}{password}\n")
    conf = root / "dovecot.conf"
    conf.write_text(
        _CONFIG_TEMPLATE.format(
            root=root,
            port=port,
            uid=mail_user.pw_uid,
            gid=mail_user.pw_gid,
            internal_user=internal_user,
            login_user=login_user,
        )
    )
    process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
        [str(binary), "-F", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=(root / "stderr.log").open("wb"),
    )
    server = DovecotServer("127.0.0.1", port, user, password, root, process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = (root / "stderr.log").read_text(errors="replace")
            log = server.log_text
            server.stop()
            raise DovecotUnavailable(f"dovecot exited early: {stderr}\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(200).startswith(b"* OK"):
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise DovecotUnavailable("dovecot did not answer on its IMAP port within 20 s")


# ssl=no and cleartext auth are acceptable only because the server listens on loopback
# inside a test; production IMAP must use TLS (ImapConfig.use_tls).
_CONFIG_TEMPLATE = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_internal_group = {internal_user}
default_login_user = {login_user}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""
