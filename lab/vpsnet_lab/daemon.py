"""The lab's host-side helper process: one metadata service per guest, and
one relay per guest-to-guest link.

Started by `vpsnet-lab up`, tracked by PID, stopped by `down` (SIGTERM).

Both ends of a link connect to the relay as clients: QEMU's stream netdev
writes to an accepted (server-side) socket in a way that freezes the whole
guest once the peer stops reading, while its client side backs up cleanly.
The relay keeps that back-pressure: it reads from one end only as fast as
the other end takes the bytes, so a paused peer really stalls the sender's
TX ring.

The link is a unix socket in the lab's state directory, not TCP on loopback:
loopback TCP autotunes QEMU's send buffer up to tcp_wmem's maximum (4 MiB) and
the relay's up to megabytes more, a hidden queue of about 10 MB per direction
that no real link has (hundreds of milliseconds at lab rates; it showed as
p99 ping under load in bench/wan.py). A unix socket's buffer is fixed
(wmem_default) and the relay's own are small: a stalled receiver now backs
the sender up after 0.5 MB per direction (10 MB before), like a router port,
and the relay still carries several Gbit/s.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import threading
from pathlib import Path

from .metadata import Identity, MetadataServer

# The relay's own buffering per direction: socket send buffer and read size.
RELAY_BUFFER_BYTES = 32 * 1024


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(RELAY_BUFFER_BYTES):
            dst.write(data)
            await dst.drain()  # back-pressure: stop reading while the peer does
    except ConnectionError:
        pass
    finally:
        dst.close()


async def _relay(path: Path, started: threading.Event) -> None:
    ends: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def joined(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                   RELAY_BUFFER_BYTES)
        writer.transport.set_write_buffer_limits(high=RELAY_BUFFER_BYTES)
        ends.append((reader, writer))
        if len(ends) == 2:
            (ra, wa), (rb, wb) = ends
            await asyncio.gather(_pipe(ra, wb), _pipe(rb, wa))

    path.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(joined, path=str(path), limit=RELAY_BUFFER_BYTES)
    path.chmod(0o600)
    started.set()
    async with server:
        await server.serve_forever()


def _start_relays(paths: list[Path]) -> None:
    if not paths:
        return
    loop = asyncio.new_event_loop()
    started = [threading.Event() for _ in paths]
    relays = [loop.create_task(_relay(path, event))
              for path, event in zip(paths, started, strict=True)]
    threading.Thread(target=loop.run_forever, name="link-relays", daemon=True).start()
    for event in started:
        if not event.wait(10):
            raise SystemExit(f"link relay did not start: {[r for r in relays if r.done()]}")


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    _start_relays([Path(p) for p in argv[3:]])
    ready = Path(argv[1])
    log = open(argv[2], "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    servers = []
    for entry in config:
        ident = Identity(**entry["identity"])
        srv = MetadataServer(ident, port=entry["port"], log=log)
        srv.start()
        servers.append(srv)
        log.write(f"metadata for {ident.name} ({ident.cloud}) on 127.0.0.1:{srv.port}\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ready.write_text("ready\n")
    stop.wait()
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
