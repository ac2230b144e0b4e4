"""Boot, drive and tear down a lab fleet of QEMU guests.

Every process the lab starts (QEMU, the metadata helper) and every network
namespace it creates is written to the state file at once, so `down` can
remove exactly those, by PID and start time, even after a crashed `up`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
from qemu.qmp.legacy import QEMUMonitorProtocol

from . import accel as accels
from . import image as images
from . import netns, procs, secureboot
from .hostcheck import check_host, port_in_use
from .paths import CACHE, STATE, LabError
from .qemu import identity, link_socket, nic_device, qemu_command
from .spec import Guest, Spec, to_data
from .specparse import parse

DEFAULT_BOOT_TIMEOUT = 300.0
SSH_KEY = CACHE / "lab-ssh" / "id_ed25519"

Say = Callable[[str], None]

# paramiko logs every refused connection while a guest boots; we report our own.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def ensure_ssh_key() -> Path:
    if not SSH_KEY.exists():
        SSH_KEY.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vpsnet-lab",
                        "-f", str(SSH_KEY)], check=True)
    return SSH_KEY


# A guest NIC as the CLI and tests name it: eth1 or nic1 or 1 (ASCII digits).
NIC_RE = re.compile(r"(?:eth|nic)?([0-9]{1,2})")


class Lab:
    """A running (or stopped) lab, addressed through its state directory."""

    def __init__(self, state_dir: Path = STATE) -> None:
        self.dir = Path(state_dir)
        self.state_file = self.dir / "state.json"
        self.state: dict[str, Any] = {}
        if self.state_file.exists():
            try:
                self.state = json.loads(self.state_file.read_text())
            except (OSError, UnicodeDecodeError, ValueError) as e:
                raise LabError(f"{self.state_file}: unreadable lab state ({e}); "
                               f"stop what it ran by hand and remove it") from None
            if not isinstance(self.state, dict):
                raise LabError(f"{self.state_file}: unreadable lab state (not an object)")
        self._spec: tuple[object, Spec] | None = None
        self._ssh: dict[str, paramiko.SSHClient] = {}
        self._lock = threading.Lock()

    # --- state -----------------------------------------------------------------
    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(self.state_file)

    @property
    def spec(self) -> Spec:
        """The lab's spec: the one Lab.up was given, or the state's record parsed
        once (every ssh, qmp and status call asks for it)."""
        if not self.state:
            raise LabError(f"no lab is up (no state in {self.dir})")
        record = self.state["spec"]
        if self._spec is None or self._spec[0] is not record:
            self._spec = (record, parse(record, self.state.get("source", "<state>")))
        return self._spec[1]

    def is_up(self) -> bool:
        recorded = [*self.state.get("guests", {}).values(), self.state.get("helper") or {}]
        return any(p and procs.alive(p) for p in recorded)

    # --- up / down -------------------------------------------------------------
    @property
    def accel(self) -> str:
        """The accelerator the running lab's guests use ("kvm" or "tcg")."""
        return str(self.state.get("accel", {}).get("accel", "tcg"))

    @classmethod
    def up(cls, spec: Spec | dict[str, Any], source: str = "<spec>", state_dir: Path = STATE,
           boot_timeout: float = DEFAULT_BOOT_TIMEOUT, say: Say = _quiet,
           accel_probe: accels.Probe | None = None) -> Lab:
        """Boot SPEC's guests and wait for their SSH. SPEC is a parsed Spec (the
        CLI loads one) or spec data built in code, parsed here (SOURCE names it)."""
        lab = cls(state_dir)
        if lab.is_up():
            raise LabError(f"a lab is already up in {lab.dir}: run `vpsnet-lab down` first")
        if not isinstance(spec, Spec):
            spec = parse(spec, source)
        check_host(spec)
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, taps)")
        want = accels.requested(spec.accel)
        imgs = {kf: images.build(kf[0], say=say, firmware=kf[1])
                for kf in sorted({(g.kernel, g.firmware) for g in spec.guests})}
        probe = accel_probe or accels.default_probe(next(iter(imgs.values())).kernel)
        accel = accels.choose(want, probe)
        say(f"accelerator: {accel.name} ({accel.reason})")
        # The state keeps the spec as spec data: a later process parses it back.
        lab.state = {"spec": to_data(spec), "source": spec.source, "guests": {},
                     "helper": None, "netns": [], "metadata_ports": {}, "started": time.time(),
                     "accel": accel.as_dict()}
        lab._spec = (lab.state["spec"], spec)
        lab.dir.mkdir(parents=True, exist_ok=True)
        lab._save()
        try:
            lab._start(spec, imgs, boot_timeout, say)
        except BaseException:
            say("lab did not come up; tearing down what was started")
            lab.down()
            raise
        return lab

    def _start(self, spec: Spec, imgs: dict[tuple[str, str], images.Image], timeout: float,
               say: Say) -> None:
        key = ensure_ssh_key().with_suffix(".pub").read_text().strip()
        self._start_metadata(spec)
        ports = self.state["metadata_ports"]
        order = list(spec.guests)
        say(f"booting {len(order)} guest(s): {', '.join(g.name for g in order)}")
        started = time.monotonic()
        for g in order:
            gdir = self.dir / g.name
            gdir.mkdir(parents=True, exist_ok=True)
            for stale in ("serial.log", "qmp.sock"):
                (gdir / stale).unlink(missing_ok=True)
            tap_fds: dict[int, list[int]] = {}
            for nic in g.nics:
                if nic.kind == "tap":
                    assert nic.netns and nic.peer_address
                    self.state["netns"].append(nic.netns)
                    self._save()
                    netns.create(nic.netns)
                    tap_fds[nic.index] = netns.open_mq_tap(nic.netns, f"tap{nic.index}",
                                                           nic.queues, nic.peer_address,
                                                           nic.peer_address6)
            if g.uefi:
                certs = [Path(c) for c in g.mok_certs] or [secureboot.fleet_signing_key()[1]]
                secureboot.make_vars(gdir / secureboot.VARS_NAME, certs)
                self.state.setdefault("mok_certs", {})[g.name] = [str(c) for c in certs]
            cmd = qemu_command(spec, g, imgs[(g.kernel, g.firmware)], gdir, ports[g.name], key,
                               tap_fds, accel=self.accel)
            all_fds = [fd for fds in tap_fds.values() for fd in fds]
            with (gdir / "qemu.log").open("w") as log:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                        pass_fds=all_fds, start_new_session=True)
            for fd in all_fds:
                os.close(fd)
            self.state["guests"][g.name] = procs.record(proc.pid, "qemu")
            self.state["guests"][g.name]["boot_started"] = time.time()
            self._save()
        errors: dict[str, str] = {}
        threads = [threading.Thread(target=self._wait_ssh, args=(g, timeout, started, say, errors))
                   for g in order]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise LabError("\n".join(errors[n] for n in sorted(errors)))
        self.state["up_seconds"] = round(time.monotonic() - started, 1)
        self._save()
        say(f"lab {spec.name} up: {len(order)} guest(s) answered SSH in "
            f"{self.state['up_seconds']}s under {self.accel.upper()}")

    def _start_metadata(self, spec: Spec) -> None:
        ports: dict[str, int] = {}
        port = spec.base_port + 100
        config = []
        for g in spec.guests:
            while port_in_use(port) or port in {g.ssh_port for g in spec.guests}:
                port += 1
            ports[g.name] = port
            config.append({"identity": identity(spec, g), "port": port})
            port += 1
        cfg_path, ready = self.dir / "metadata.json", self.dir / "metadata.ready"
        cfg_path.write_text(json.dumps(config, indent=2))
        ready.unlink(missing_ok=True)
        log = self.dir / "metadata.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "vpsnet_lab.daemon", str(cfg_path), str(ready), str(log),
             *(str(link_socket(self.dir, link)) for link in spec.links)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=(self.dir / "helper.err")
            .open("w"), start_new_session=True)
        self.state["helper"] = procs.record(proc.pid, "metadata")
        self.state["metadata_ports"] = ports
        self._save()
        deadline = time.monotonic() + 20
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError("metadata helper did not start: "
                               f"{procs.tail(self.dir / 'helper.err')}")
            time.sleep(0.05)

    def _wait_ssh(self, g: Guest, timeout: float, started: float, say: Say,
                  errors: dict[str, str]) -> None:
        deadline = started + timeout
        proc = self.state["guests"][g.name]
        while time.monotonic() < deadline:
            if not procs.alive(proc):
                gdir = self.dir / g.name
                errors[g.name] = (f"{g.name}: QEMU exited during boot; qemu log:\n"
                                  f"{procs.tail(gdir / 'qemu.log')}\nserial log tail:\n"
                                  f"{procs.tail(gdir / 'serial.log')}")
                return
            try:
                self._client(g.name, connect_timeout=5)
                say(f"  {g.name}: SSH up after {time.monotonic() - started:.1f}s "
                    f"({g.cloud} {g.region}, kernel {g.kernel})")
                return
            except (OSError, paramiko.SSHException, EOFError):
                time.sleep(1)
        errors[g.name] = (f"{g.name}: no SSH on 127.0.0.1:{g.ssh_port} within {timeout:.0f}s; "
                          f"serial log tail:\n{procs.tail(self.dir / g.name / 'serial.log')}")

    def down(self, say: Say = _quiet) -> None:
        """Stop every process and remove every namespace this lab recorded."""
        for name, client in list(self._ssh.items()):
            client.close()
            del self._ssh[name]
        if not self.state:
            return
        for name, proc in self.state.get("guests", {}).items():
            if procs.alive(proc):
                say(f"stopping {name} (pid {proc['pid']})")
            procs.stop(proc)
        if self.state.get("helper"):
            procs.stop(self.state["helper"])
        for sock in self.dir.glob("link*.sock"):
            sock.unlink()
        for ns in self.state.get("netns", []):
            netns.delete(ns)
        self.state_file.unlink(missing_ok=True)
        self.state = {}

    # --- driving guests --------------------------------------------------------
    def _client(self, name: str, connect_timeout: float = 10) -> paramiko.SSHClient:
        with self._lock:
            client = self._ssh.get(name)
            transport = client.get_transport() if client else None
            if client and transport and transport.is_active():
                return client
        g = self.spec.guest(name)
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # lab guests only
        client.connect("127.0.0.1", port=g.ssh_port, username="root",
                       key_filename=str(SSH_KEY), look_for_keys=False, allow_agent=False,
                       timeout=connect_timeout, banner_timeout=connect_timeout,
                       auth_timeout=connect_timeout)
        transport = client.get_transport()
        if transport:
            transport.set_keepalive(10)
        with self._lock:
            self._ssh[name] = client
        return client

    def ssh(self, name: str, command: str, timeout: float = 120, check: bool = False) -> Result:
        client = self._client(name)
        _, out, err = client.exec_command(command, timeout=timeout)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        rc = out.channel.recv_exit_status()
        result = Result(rc, stdout, stderr)
        if check and rc != 0:
            raise LabError(f"{name}: `{command}` exited {rc}: {stderr.strip() or stdout.strip()}")
        return result

    def put(self, name: str, local: Path | str, remote: str) -> None:
        sftp = self._client(name).open_sftp()
        try:
            sftp.put(str(local), remote)
        finally:
            sftp.close()

    def qmp(self, name: str, command: str, args: dict[str, Any] | None = None) -> Any:
        self.spec.guest(name)
        sock = self.dir / name / "qmp.sock"
        mon = QEMUMonitorProtocol(str(sock))
        try:
            mon.connect()
            return mon.cmd(command, **(args or {}))
        except Exception as exc:
            raise LabError(f"{name}: QMP {command} failed: {exc}") from exc
        finally:
            mon.close()

    def _nic(self, name: str, nic: str) -> int:
        g = self.spec.guest(name)
        m = NIC_RE.fullmatch(nic)
        valid = [0] + [n.index for n in g.nics]
        if m is None or int(m[1]) not in valid:
            raise LabError(f"{name} has no NIC {nic!r} (NICs: "
                           f"{', '.join(f'eth{i}' for i in valid)})")
        return int(m[1])

    def link(self, name: str, nic: str, up: bool) -> None:
        self.qmp(name, "set_link", {"name": f"n{self._nic(name, nic)}", "up": up})

    def pause(self, name: str) -> None:
        self.qmp(name, "stop")

    def resume(self, name: str) -> None:
        self.qmp(name, "cont")

    def unplug(self, name: str, nic: str) -> None:
        """Hot-unplug a NIC (the guest sees a PCI removal); waits until it is gone."""
        index = self._nic(name, nic)
        self.qmp(name, "device_del", {"id": f"nic{index}"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            devices = self.qmp(name, "qom-list", {"path": "/machine/peripheral"})
            if not any(d["name"] == f"nic{index}" for d in devices):
                return
            time.sleep(0.2)
        raise LabError(f"{name}: NIC nic{index} was not released by the guest within 30s")

    def plug(self, name: str, nic: str) -> None:
        spec = self.spec
        g = spec.guest(name)
        index = self._nic(name, nic)
        nic_spec = next((n for n in g.nics if n.index == index), None)
        self.qmp(name, "device_add", nic_device(spec, g, nic_spec))

    def status(self) -> list[dict[str, Any]]:
        if not self.state:
            return []
        spec = self.spec
        rows = []
        for g in spec.guests:
            proc = self.state["guests"].get(g.name)
            alive = bool(proc and procs.alive(proc))
            run_state = "stopped"
            if alive:
                try:
                    run_state = str(self.qmp(g.name, "query-status")["status"])
                except LabError:
                    run_state = "unknown"
            rows.append({"name": g.name, "cloud": g.cloud, "region": g.region, "zone": g.zone,
                         "kernel": g.kernel, "firmware": g.firmware, "ssh_port": g.ssh_port,
                         "pid": proc["pid"] if proc else None, "state": run_state,
                         "accel": self.accel})
        return rows
