"""The lab's host-side helper process: one metadata service per guest.

Started by `vpsnet-lab up`, tracked by PID, stopped by `down` (SIGTERM).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from .metadata import Identity, MetadataServer


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
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
