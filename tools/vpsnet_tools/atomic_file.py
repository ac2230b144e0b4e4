"""Replace a file whole so a reader never sees half of it. Standard library only:
the vpsnet_tune role also installs this file on hosts (as vpsnet_atomic_file.py,
beside vpsnet-tune), where vpsnet_tools may not be installed."""

from __future__ import annotations

import contextlib
import os
import tempfile


def atomic_write(path: str | os.PathLike[str], data: str | bytes, mode: int = 0o644) -> None:
    """PATH replaced by DATA with MODE: a temp file beside it (.NAME.*.tmp, a name no
    textfile collector reads), synced, then renamed over PATH."""
    directory, name = os.path.split(os.fspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
