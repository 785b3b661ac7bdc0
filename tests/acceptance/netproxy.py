"""A corporate network on loopback for the tests: an HTTP proxy (CONNECT tunnels, absolute-form requests) and
the certificates of a TLS-inspecting one, made with the openssl CLI.

:class:`Proxy` serves from a thread of its own. A CONNECT is answered by ``mode``:

* ``"refuse"``: ``refuse_status`` (407 or 403), and the connection closed: no byte of the POST ever left;
* ``"inspect"``: 200, then TLS as the CONNECT's host with the test CA's certificate (what a TLS-inspecting proxy
  does; the runner trusts it through ``SSL_CERT_FILE``), and the decrypted bytes relayed to ``upstream`` (the
  simulator's plain port);
* ``"drop"``: as ``inspect``, but the first request's head and body are read whole (its request line kept in
  :attr:`Proxy.tunnelled`) and the tunnel closed unanswered: the POST went out, its answer never came.

``Proxy("tls", …)`` is no proxy but a TLS front of ``upstream`` (``https://127.0.0.1:PORT``, the same certificate).

An absolute-form request (``POST http://host/...``, a plain-http URL through the proxy) is answered 502. Every request line the proxy saw is in :attr:`Proxy.seen`.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Certs", "Proxy", "make_certs"]


@dataclass(frozen=True)
class Certs:
    ca: Path  # the root a TLS-inspecting proxy's operator hands out (SSL_CERT_FILE)
    cert: Path  # a leaf for api.novita.test, localhost and 127.0.0.1, signed by ``ca``
    key: Path


def make_certs(folder: Path, names: str = "DNS:api.novita.test,DNS:localhost,IP:127.0.0.1") -> Certs:
    """A test CA and a leaf certificate for ``names`` signed by it (openssl CLI, RSA 2048: ~0.2 s)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "leaf.pem", folder / "leaf.key", folder / "leaf.csr"
    ext = folder / "leaf.ext"
    ext.write_text(f"subjectAltName={names}\nbasicConstraints=CA:FALSE\n", encoding="ascii")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
            "-days", "2", "-subj", "/CN=Test Inspecting Proxy CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=leaf")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return Certs(ca, cert, key)


class Proxy:
    """An HTTP proxy on a loopback port; ``url`` is what HTTPS_PROXY / HTTP_PROXY say."""

    def __init__(self, mode: str, *, certs: Certs | None = None, upstream: tuple[str, int] | None = None,
                 refuse_status: int = 407) -> None:
        self.mode = mode
        self.certs = certs
        self.upstream = upstream
        self.refuse_status = refuse_status
        self.seen: list[str] = []
        self.tunnelled: list[str] = []  # ``drop``: the request lines read whole in a tunnel, never answered
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        context = None
        if self.mode == "tls":  # not a proxy: a TLS front of ``upstream``, its certificate the test CA's
            assert self.certs is not None
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.certs.cert, self.certs.key)
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context), self._loop)
        self._server = future.result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:  # the listener, then every connection still served
            assert self._server is not None
            self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.mode == "tls":
                assert self.upstream is not None
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.seen.append(line)
            if not line.startswith("CONNECT "):  # absolute-form (http:// through the proxy): a gateway error
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return
            if self.mode == "refuse":
                reason = {407: "Proxy Authentication Required", 403: "Forbidden"}.get(self.refuse_status, "No")
                writer.write(f"HTTP/1.1 {self.refuse_status} {reason}\r\nContent-Length: 0\r\n"
                             "Connection: close\r\n\r\n".encode("ascii"))
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            assert self.certs is not None
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.certs.cert, self.certs.key)
            await writer.start_tls(context)
            if self.mode == "drop":
                self.tunnelled.append(await self._read_request(reader))
                return
            assert self.upstream is not None
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> str:
        """The request line of a request read whole (its head and Content-Length body)."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for raw in head.split(b"\r\n")[1:]:
            name, _, value = raw.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        await reader.readexactly(length)
        return head.split(b"\r\n", 1)[0].decode("latin-1")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        writer.close()
