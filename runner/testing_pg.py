"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` in a temporary directory,
``postgres`` on loopback only, stopped and deleted afterwards.

    with TempPostgres.start() as server:
        url = server.create_database("t1")      # postgresql://runner@127.0.0.1:PORT/t1

It lives in the package (beside :mod:`runner.testing`), not under ``tests/``, so that the
benchmarks and the crash tortures — which start runner processes of their own — can start one
too. Nothing here is used by the runner itself.

* Binaries: ``$RUNNER_PG_BINDIR`` (only there, when set), else ``pg_config --bindir``, else the newest
  ``/usr/lib/postgresql/*/bin``, else ``initdb`` on the ``PATH``.
* Root: ``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` system
  user (``runuser -u postgres --``) and the temporary directory is handed to it; as anyone else it
  runs as that user.
* Network: ``listen_addresses = 127.0.0.1`` on a free port, its Unix socket inside the temporary
  directory, ``trust`` authentication for the one superuser ``runner`` (only this machine can reach
  it, and only for the test's lifetime).
* Durability: ``fsync`` stays ON, like a real server — the ledger's money path is durable commits,
  and a test server that skipped fsync would hide what those commits cost.

:func:`unavailable_reason` says why no server can be started here (``None`` when one can).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["BINDIR_ENV", "REQUIRE_ENV", "PostgresUnavailable", "TempPostgres", "find_bindir", "required", "unavailable_reason"]

BINDIR_ENV = "RUNNER_PG_BINDIR"  # where the server binaries are (then looked for nowhere else)
REQUIRE_ENV = "RUNNER_REQUIRE_POSTGRES"  # set (or CI=true): a server that cannot start fails the tests
SUPERUSER = "runner"
_SERVICE_USER = "postgres"  # the system user the server runs as when we are root
_START_TIMEOUT_S = 30.0


class PostgresUnavailable(RuntimeError):
    """No throwaway server can be started here (no binaries, no service user, it would not start)."""


def required() -> bool:
    """Whether PostgreSQL tests must fail rather than skip when no server can start (CI)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0") or os.environ.get("CI", "").lower() == "true"


def find_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``."""
    candidates: list[str] = []
    if os.environ.get(BINDIR_ENV):
        candidates.append(os.environ[BINDIR_ENV])  # only there: a test can also point it at nothing
        return _first_bindir(candidates)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(out.stdout.strip())
    candidates.extend(sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    return _first_bindir(candidates)


def _first_bindir(candidates: list[str]) -> Path | None:
    for folder in candidates:
        path = Path(folder)
        if all((path / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return path
    return None


def _version_key(folder: str) -> tuple[int, ...]:
    parts = Path(folder).parent.name.split(".")
    return tuple(int(p) for p in parts if p.isdigit())


def unavailable_reason() -> str | None:
    """Why no throwaway server can be started here, or ``None`` when one can be."""
    if find_bindir() is None:
        return ("no PostgreSQL server binaries (initdb, pg_ctl, postgres) were found; install Debian's "
                "postgresql package (apt-get install postgresql) or set RUNNER_PG_BINDIR")
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam(_SERVICE_USER)
        except KeyError:
            return f"running as root but there is no {_SERVICE_USER!r} system user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root but runuser (util-linux) is missing"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TempPostgres:
    """One running throwaway server; :meth:`stop` (or leaving the ``with``) stops it and deletes its files."""

    def __init__(self, root: Path, bindir: Path, port: int, as_user: list[str]) -> None:
        self.root = root
        self.bindir = bindir
        self.port = port
        self.host = "127.0.0.1"
        self._as_user = as_user
        self._stopped = False
        self._databases = 0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL of database ``dbname`` on this server (no password: trust on loopback)."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    @classmethod
    def start(cls, *, base: Path | None = None) -> TempPostgres:
        """initdb, start, wait until it answers; raises :class:`PostgresUnavailable` with the reason."""
        reason = unavailable_reason()
        if reason is not None:
            raise PostgresUnavailable(reason)
        bindir = find_bindir()
        assert bindir is not None
        root = Path(tempfile.mkdtemp(prefix="runner-pg-", dir=base))
        as_user: list[str] = []
        if os.geteuid() == 0:
            as_user = ["runuser", "-u", _SERVICE_USER, "--"]
            shutil.chown(root, user=_SERVICE_USER)
            os.chmod(root, 0o700)
        server = cls(root, bindir, _free_port(), as_user)
        try:
            server._init_and_start()
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, *argv: str, timeout: float = 60.0) -> None:
        out = subprocess.run([*self._as_user, *argv], capture_output=True, text=True, timeout=timeout,
                             cwd=self.root, check=False)
        if out.returncode != 0:
            tail = (out.stderr or out.stdout).strip().splitlines()[-5:]
            raise PostgresUnavailable(f"{Path(argv[0]).name} failed (exit {out.returncode}): " + " | ".join(tail))

    def _init_and_start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-instructions")
        for attempt in range(3):  # another process may take the free port before the server binds it
            try:
                self._start()
                return
            except PostgresUnavailable:
                if attempt == 2 or "could not bind" not in self._log_tail():
                    raise
                self.port = _free_port()

    def _start(self) -> None:
        options = (f"-c listen_addresses={self.host} -c port={self.port} -c unix_socket_directories={self.root}"
                   " -c fsync=on -c synchronous_commit=on -c max_connections=100 -c shared_buffers=16MB")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", str(int(_START_TIMEOUT_S)), "start", timeout=_START_TIMEOUT_S + 10)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(f"the server did not answer on port {self.port}: {exc}") from exc
                time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database (a new name each call unless given); its URL."""
        import psycopg

        self._databases += 1
        name = name or f"t{self._databases}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def halt(self, mode: str = "immediate") -> None:
        """Stop the server and keep its files: a restart's first half (``immediate``: as a crash or a failover)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def resume(self) -> None:
        """Start again, on the same port, a server :meth:`halt` stopped."""
        self._start()

    def stop(self) -> None:
        """Stop the server (immediate: its files are deleted anyway) and delete its directory; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if (self.data_dir / "postmaster.pid").exists():
                with contextlib.suppress(PostgresUnavailable, subprocess.SubprocessError):
                    self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w",
                              "stop")
        finally:
            _remove_behind(self.root)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _remove_behind(root: Path) -> None:
    """Delete ``root`` without waiting for it: a session's server holds a database per test (~12 MB and ~1,000 files
    each), and deleting them took 8-25 s at the end of a test worker, as its last test's teardown. The folder is
    renamed first (gone at once from its name), then removed by a process of its own that outlives this one."""
    doomed = root.with_name(f"{root.name}-deleted")
    try:
        root.rename(doomed)
        subprocess.run(["sh", "-c", 'rm -rf -- "$1" &', "sh", str(doomed)], stdin=subprocess.DEVNULL,  # sh returns
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, check=True)  # at once
    except (OSError, subprocess.SubprocessError):
        shutil.rmtree(root if root.exists() else doomed, ignore_errors=True)
