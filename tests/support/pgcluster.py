"""A private, throwaway PostgreSQL cluster for tests that stop or restart the server.

The machine's shared cluster (the one RELAYFLOW_TEST_DATABASE_URL names) serves every
other test, so a test that restarts PostgreSQL gets its own: `initdb` into a temporary
directory, its own port on 127.0.0.1, trust authentication, its socket in that directory.
Tests run as root in CI; PostgreSQL refuses to, so then the server runs as `postgres`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SERVER_USER = "postgres"


def find_bin() -> Path | None:
    """The newest installed server binaries (Debian's layout), or RELAYFLOW_PG_BIN."""
    configured = os.environ.get("RELAYFLOW_PG_BIN")
    candidates = [configured] if configured else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name),
        reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = _free_port()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{tool} {args[0]} failed: {done.stderr}{done.stdout}\n{log}")

    def init(self) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        # fsync off: a throwaway cluster; a restart here is a clean or an immediate stop of
        # the server process, not of the machine, so what reached the kernel is not lost.
        # synchronous_commit stays on: off, a commit is acknowledged while its WAL is still
        # in the server's shared memory, and an immediate stop loses it. The product relies
        # on an acknowledged commit being there (an intent committed before its effect), so
        # such a loss is a fault no production setting allows, and it showed up in the
        # restart test as steps the workers had committed and then found missing.
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
                   "-c fsync=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def create() -> Cluster | None:
    """Initialise and start a cluster in a new directory under the system temp directory
    (pytest's own is private to root, out of the server user's reach); None when PostgreSQL
    is not installed."""
    bin_dir = find_bin()
    if bin_dir is None:
        return None
    cluster = Cluster(bin_dir, Path(tempfile.mkdtemp(prefix="relayflow-pg-")))
    cluster.init()
    cluster.start()
    return cluster


def replica_of(primary: Cluster) -> Cluster:
    """A streaming replica of `primary`, started on a port of its own: `pg_basebackup -R`
    copies the primary and leaves a standby that follows its log (hot standby: it answers
    reads)."""
    cluster = Cluster(primary.bin_dir, Path(tempfile.mkdtemp(prefix="relayflow-pg-replica-")))
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SERVER_USER)
        os.chown(cluster.root, owner.pw_uid, owner.pw_gid)
    # A fast checkpoint to start from: the default spreads it out, a tenth of a second a
    # page the migrations left dirty (26 s here).
    cluster._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                 "-D", str(cluster.data), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast")
    cluster.start()
    return cluster
