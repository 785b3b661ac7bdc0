"""`python -m runner` forked from an interpreter that has already imported the runner: the CLI acceptance tests'
runs without the 0.3 s of CPU each new interpreter spends importing (httpx, anyio, pydantic, the CLI: most of what
a three-job run against the simulator costs). Used by :func:`test_cli_support.run_cli`; this module holds no tests.

One server per test process (``serve``, started on the first call): it imports the runner as ``runner._entry`` would
(``httpx._main`` unimportable, no pydantic plugins), then for each request forks a waiter, which forks the command's
process: the request's stdin, stdout and stderr on 0, 1 and 2, its working directory, exactly its environment, and
``runpy.run_module("runner")`` as ``-m`` does. That process is a real one of its own (its pid, its exit status or
signal, its atexit callbacks, its files and locks); the waiter reports its pid, then its wait status.

What a fresh interpreter reads at start-up and a fork cannot take again (``PYTHON*``: ``PYTHONPATH``'s sitecustomize,
the locale, ``TMPDIR``, certificate files, a file size limit) is never forked: such a call starts a fresh
``python -m runner`` (:func:`forkable`). ``TEST_CLI_FRESH=1`` in the test process's environment makes every
call one, to compare.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

FRESH_ENV = "TEST_CLI_FRESH"  # (not RUNNER_*: the runner warns of a RUNNER_ variable it does not read)
# What a forked command may be given differently from the server's own environment: read by the runner when it
# runs, never by an interpreter starting nor by an import.
_RUNTIME_PREFIXES = ("NOVITA_", "RUNNER_")
_RUNTIME_NAMES = frozenset(name for proxy in ("https_proxy", "http_proxy", "all_proxy", "no_proxy")
                           for name in (proxy, proxy.upper())) | {"PYTEST_CURRENT_TEST",  # (pytest's, per test)
                                                                  "XDG_STATE_HOME"}  # (the book of ledgers, per test)


class Finished(NamedTuple):
    code: int
    stdout: str
    stderr: str


_LIMITS = ("RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_STACK")


def _limits() -> tuple[tuple[int, int], ...]:
    import resource

    return tuple(resource.getrlimit(getattr(resource, name)) for name in _LIMITS)


class _Server:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.limits = _limits()
        self.folder = Path(tempfile.mkdtemp(prefix="runner-preloaded-"))
        self.path = str(self.folder / "socket")
        self.log = (self.folder / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r});"
             " import preloaded_cli; preloaded_cli.serve(sys.argv[1])", self.path],
            cwd=self.folder, env=self.env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
        )

    def connect(self) -> socket.socket:
        deadline = time.monotonic() + 30
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the preloaded runner server did not start: "
                                       f"{(self.folder / 'server.log').read_text(errors='replace')}") from None
                time.sleep(0.01)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_server: _Server | None = None
_starting = threading.Lock()  # (a test that runs commands from two threads starts one server)


def forkable(env: Mapping[str, str], base: Mapping[str, str]) -> bool:
    """Whether a command with environment ``env`` may be forked from a server started with ``base``: every variable
    that differs is one the runner reads as it runs (not ``PYTHON*``, the locale, ``TMPDIR``…)."""
    differ = {name for name in env.keys() | base.keys() if env.get(name) != base.get(name)}
    return all(name.startswith(_RUNTIME_PREFIXES) or name in _RUNTIME_NAMES for name in differ)


def run(args: list[str], *, cwd: Path, env: Mapping[str, str], base: Mapping[str, str],
        timeout: float) -> Finished | None:
    """``python -m runner *args`` forked from the server (started with ``base``), to completion; None where it may not
    be forked (:func:`forkable`): the caller starts a fresh interpreter."""
    global _server
    if os.environ.get(FRESH_ENV) == "1":
        return None
    with _starting:
        if _server is None or _server.proc.poll() is not None:
            if _server is not None:
                _server.stop()
            _server = _Server(base)
            atexit.register(_server.stop)
        server = _server
    if not forkable(env, server.env) or _limits() != server.limits:  # (a limit the test process set since)
        return None
    return _request(server.connect(), args, cwd=cwd, env=env, timeout=timeout)


def _request(sock: socket.socket, args: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float) -> Finished:
    read_out, write_out = os.pipe()
    read_err, write_err = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    with sock:
        try:
            socket.send_fds(sock, [b"r"], [devnull, write_out, write_err])
            umask = os.umask(0o022)
            os.umask(umask)
            payload = json.dumps({"args": args, "cwd": str(cwd), "env": dict(env), "umask": umask}).encode()
            sock.sendall(len(payload).to_bytes(8, "big") + payload)
        finally:
            for fd in (devnull, write_out, write_err):
                os.close(fd)
        with sock.makefile("rb") as answers:
            pid = int(answers.readline())
            deadline = time.monotonic() + timeout
            try:
                out, err, timed_out = _drain(read_out, read_err, deadline)
            except BaseException:  # the test interrupted (its timeout, Ctrl-C): the command killed, as subprocess.run
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                raise
            if timed_out:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            status = answers.readline()
    code = os.waitstatus_to_exitcode(int(status))
    stdout, stderr = _text(out), _text(err)
    if timed_out:
        raise subprocess.TimeoutExpired(["runner", *args], timeout, stdout, stderr)
    return Finished(code, stdout, stderr)


def _drain(read_out: int, read_err: int, deadline: float) -> tuple[bytes, bytes, bool]:
    """Both pipes read to their end (the command's and any child's that kept them), or until ``deadline``."""
    chunks: dict[int, list[bytes]] = {read_out: [], read_err: []}
    try:
        return _read_both(chunks, read_out, read_err, deadline)
    finally:
        for fd in chunks:
            os.close(fd)


def _read_both(chunks: dict[int, list[bytes]], read_out: int, read_err: int,
               deadline: float) -> tuple[bytes, bytes, bool]:
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            selector.register(fd, selectors.EVENT_READ)
        open_fds = set(chunks)
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in selector.select(left):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    selector.unregister(key.fd)
                    open_fds.discard(key.fd)
    return b"".join(chunks[read_out]), b"".join(chunks[read_err]), bool(open_fds)


def _text(data: bytes) -> str:
    """As ``subprocess.run(text=True)`` decodes: the locale's encoding, universal newlines."""
    import locale

    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------- the server (its own process)


def serve(path: str) -> None:
    """Import the runner, then fork a command per connection on ``path`` until the test process is gone."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".new")
    listener.listen(64)
    _preload()
    os.rename(path + ".new", path)  # connectable once the imports are done
    parent = os.getppid()
    while os.getppid() == parent:
        ready, _, _ = select_read(listener, 0.5)
        if ready:
            conn, _ = listener.accept()
            if os.fork() == 0:
                listener.close()
                _wait_for_command(conn)  # the waiter ends inside; the command's process raises SystemExit (or its
                # own exception) through here, which ends its interpreter as `python -m runner` would
            conn.close()
        while True:  # reap the waiters
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break


def select_read(listener: socket.socket, timeout: float) -> tuple[list[socket.socket], list[object], list[object]]:
    import select

    ready, _, _ = select.select([listener], [], [], timeout)
    return ready, [], []


def _preload() -> None:
    """What ``runner._entry.main`` sets before the CLI's import, then the CLI, every command's module and a run's."""
    import importlib

    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    import runner._entry  # noqa: F401
    from runner.cli import COMMANDS

    for module in sorted({command.module for command in COMMANDS.values()} | {"runner.service.running",
                                                                              "runner.simulator"}):
        importlib.import_module(module)
    if tempfile.tempdir is not None:  # chosen from the server's TMPDIR: each command chooses its own
        tempfile.tempdir = None
    if threading.active_count() != 1:  # a fork copies only the thread that forks
        raise RuntimeError(f"importing the runner started threads: {threading.enumerate()}")


def _wait_for_command(conn: socket.socket) -> None:
    """In the waiter: fork the command's process, say its pid, wait for it, say its wait status, end (never returns
    there). In the command's process: never returns either (:func:`_become_command`)."""
    try:
        _, fds, _, _ = socket.recv_fds(conn, 1, 3)
        request = conn.makefile("rb")
        size = int.from_bytes(request.read(8), "big")
        asked = json.loads(request.read(size))
        request.close()
        pid = os.fork()
    except BaseException:
        os._exit(70)
    if pid == 0:
        conn.close()
        _become_command(asked, fds)
    try:
        for fd in fds:
            os.close(fd)
        conn.sendall(f"{pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        conn.sendall(f"{status}\n".encode())
        conn.close()
    finally:
        os._exit(0)


def _become_command(asked: dict[str, object], fds: list[int]) -> None:
    """The command's process: the request's stdio, folder, environment and words, then ``runner`` as ``-m`` runs it;
    ends by raising SystemExit (or the command's own exception), as the interpreter's `-m` would see it."""
    import runpy

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    for name in os.listdir("/proc/self/fd"):  # as subprocess's close_fds: 0, 1 and 2 alone
        if int(name) > 2:
            with contextlib.suppress(OSError):  # (the listing's own, closed already)
                os.close(int(name))
    os.chdir(str(asked["cwd"]))
    os.umask(int(str(asked["umask"])))
    sys.path[:2] = [os.getcwd()]  # this folder and the server's '' -> what `-m` puts first: the working directory
    env = asked["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update(env)
    args = asked["args"]
    assert isinstance(args, list)
    sys.argv = ["runner", *args]
    runpy.run_module("runner", run_name="__main__", alter_sys=True)
    sys.exit(0)
