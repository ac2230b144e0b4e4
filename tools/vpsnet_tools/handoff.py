"""Restart a serving daemon without closing its port: the systemd side.

``systemctl reload`` (ExecReload= sends SIGHUP) makes the running exporter
start the installed code as a successor that inherits the listening socket.
The successor tells systemd it is the main process now (``MAINPID=``, with
``NotifyAccess=all``) and only then tells its predecessor, which stops
accepting, finishes the scrapes it has in hand and exits. A connection that
arrives meanwhile waits in the socket's backlog, so no scrape is refused. If
the successor fails, the predecessor keeps serving and says so. systemd logs
that it supervises a process that is "not our child": once the predecessor
exits, the successor is reparented to PID 1, which then reaps it as usual.

systemd's notify protocol (sd_notify(3)) is a datagram on $NOTIFY_SOCKET; it is
spelled out here to keep the exporter free of a compiled dependency.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable

LISTEN_FD_ENV = "VPSNET_EXPORTER_LISTEN_FD"
READY_FD_ENV = "VPSNET_EXPORTER_READY_FD"
READY = b"R"
BARRIER_TIMEOUT_S = 10.0
# below systemd's reload timeout (TimeoutStartSec=, 90 s by default), so the
# reason a reload failed is logged before systemctl gives up on it
SUCCESSOR_TIMEOUT_S = 60.0


class HandoffError(RuntimeError):
    """This process cannot take over; its predecessor keeps serving."""


log = logging.getLogger("vpsnet-exporter")


def _notify_address() -> str | None:
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if not addr:
        return None
    # "@name" is an abstract socket
    return "\0" + addr[1:] if addr.startswith("@") else addr


def sd_notify(state: str, *, barrier_timeout: float = 0.0) -> bool:
    """Send STATE to systemd; with barrier_timeout, also wait until systemd has
    processed it (BARRIER=1). False outside systemd or when systemd did not
    confirm in time."""
    addr = _notify_address()
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(addr)
            sock.sendall(state.encode())
            if barrier_timeout <= 0:
                return True
            return _barrier(sock, barrier_timeout)
    except OSError as e:
        log.warning("cannot notify systemd at %s: %s", os.environ["NOTIFY_SOCKET"], e)
        return False


def _barrier(sock: socket.socket, timeout: float) -> bool:
    rfd, wfd = os.pipe()
    try:
        socket.send_fds(sock, [b"BARRIER=1"], [wfd])
        os.close(wfd)
        wfd = -1
        # systemd closes its copy of wfd after every earlier message: EOF
        readable = select.select([rfd], [], [], timeout)[0]
        return bool(readable) and os.read(rfd, 1) == b""
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)


def _take_fd(name: str) -> int | None:
    value = os.environ.pop(name, None)
    if value is None:
        return None
    if not value.isdigit():
        raise ValueError(f"{name}={value!r} is not a file descriptor number")
    return int(value)


def inherited_socket() -> socket.socket | None:
    """The listening socket a predecessor handed over, if this is a successor."""
    fd = _take_fd(LISTEN_FD_ENV)
    return None if fd is None else socket.socket(fileno=fd)


def announce_ready() -> None:
    """Tell systemd (and the predecessor, if any) that this process serves now.
    Raises HandoffError when systemd does not confirm the new main PID: the
    predecessor must not exit then, or systemd would take it for the service's end."""
    ready_fd = _take_fd(READY_FD_ENV)
    if ready_fd is None:
        sd_notify("READY=1")
        return
    with os.fdopen(ready_fd, "wb") as ready:
        state = f"MAINPID={os.getpid()}\nREADY=1"
        if _notify_address() and not sd_notify(state, barrier_timeout=BARRIER_TIMEOUT_S):
            # systemd may still read it late: the predecessor stays the main PID
            sd_notify(f"MAINPID={os.getppid()}")
            raise HandoffError(
                f"systemd did not confirm MAINPID={os.getpid()} within {BARRIER_TIMEOUT_S:.0f} s"
            )
        ready.write(READY)


class Successor:
    """On SIGHUP, start this same command line again as a successor and call
    on_handed_over once it serves; at most one handoff at a time."""

    def __init__(
        self,
        listening: socket.socket | None,
        on_handed_over: Callable[[], None],
        timeout: float = SUCCESSOR_TIMEOUT_S,
    ) -> None:
        self.listening = listening
        self.on_handed_over = on_handed_over
        self.timeout = timeout
        self._busy = threading.Lock()

    def command(self) -> list[str]:
        # orig_argv keeps the interpreter options of the script's #! line
        return [sys.executable, *sys.orig_argv[1:]]

    def request(self, *_signal: object) -> None:
        """Signal handler: do the handoff in a thread, never in the handler."""
        if not self._busy.acquire(blocking=False):
            log.warning("reload requested while a handoff is running: ignored")
            return
        threading.Thread(target=self._run, name="handoff", daemon=True).start()

    def _run(self) -> None:
        try:
            done = self.hand_over()
        finally:
            self._busy.release()
        if done:
            self.on_handed_over()

    def hand_over(self) -> bool:
        rfd, wfd = os.pipe()
        fds = [wfd]
        env = dict(os.environ)
        env[READY_FD_ENV] = str(wfd)
        if self.listening is not None:
            fds.append(self.listening.fileno())
            env[LISTEN_FD_ENV] = str(self.listening.fileno())
        try:
            child = subprocess.Popen(self.command(), pass_fds=fds, env=env)
        except OSError as e:
            log.error("reload: cannot start %s: %s; still serving", self.command()[1:], e)
            os.close(rfd)
            return False
        finally:
            os.close(wfd)
        with os.fdopen(rfd, "rb") as ready:
            readable = select.select([ready], [], [], self.timeout)[0]
            answer = ready.read(1) if readable else b""
        if answer == READY:
            log.info("reload: handed over to pid %d", child.pid)
            return True
        if readable:
            # the pipe closed without an answer: the successor is on its way out
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)
        if child.poll() is None:
            child.kill()
            why = "closed the ready pipe and hung" if readable else (
                f"not ready within {self.timeout:.0f} s")
        else:
            why = f"exited with status {child.returncode}"
        child.wait()
        log.error("reload: the new exporter (pid %d) %s; this one keeps serving", child.pid, why)
        return False
