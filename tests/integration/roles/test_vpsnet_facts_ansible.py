"""vpsnet_facts through Ansible itself: the module's AnsibleModule plumbing and the role."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from testlib.vpsnet_facts_helpers import FIXTURES, ansible_env

BIN = Path(sys.executable).parent


def facts_env(tmp_path: Path) -> dict[str, str]:
    # The repo ansible.cfg asks for YAML results; this test reads JSON.
    return ansible_env(tmp_path, ANSIBLE_CALLBACK_RESULT_FORMAT="json")


def adhoc(tmp_path: Path, args: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-m", "vpsnet.fleet.vpsnet_facts", "-a", args,
         *extra],
        capture_output=True, text=True, env=facts_env(tmp_path), timeout=120, check=False,
    )
    # "localhost | SUCCESS => {...json...}"
    start = proc.stdout.find("=>", proc.stdout.find("localhost |"))
    if start < 0:
        return proc, {}
    result, _ = json.JSONDecoder().raw_decode(proc.stdout[start + 2 :].lstrip())
    return proc, result


def test_module_runs_under_ansible(tmp_path, aws_server):
    srv, seen = aws_server
    root = FIXTURES / "aws-nitro-ena"
    proc, result = adhoc(tmp_path, f"root={root} metadata_url=http://127.0.0.1:{srv.port}", "-C")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    assert result["changed"] is False
    cloud = result["ansible_facts"]["vpsnet_cloud"]
    assert cloud["provider"] == "aws"
    assert (cloud["region"], cloud["zone"], cloud["instance_type"]) == (
        "us-east-1", "us-east-1a", "m5.large")
    assert cloud["nics"][0]["irqs"][0]["name"] == "ens5-Tx-Rx-0"
    # a fixture root is not this machine: ethtool is not run on it
    assert cloud["nics"][0]["queues"]["max"] is None
    assert all(r[2].get("X-aws-ec2-metadata-token") for r in seen.requests if r[0] == "GET")


def test_module_forced_to_ipv6_under_ansible(tmp_path, closed_port):
    """metadata_ip_version=6 reaches the module: the IPv6 URL is the one asked."""
    sock = socket.socket(socket.AF_INET6)
    try:
        sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = sock.getsockname()[1]
    sock.close()  # closed: the refusal names the IPv6 request
    root = FIXTURES / "aws-nitro-ena"
    proc, result = adhoc(tmp_path, f"root={root} metadata_url=http://127.0.0.1:{closed_port} "
                                   f"metadata_url_ipv6=http://[::1]:{port} metadata_ip_version=6")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    evidence = result["ansible_facts"]["vpsnet_cloud"]["evidence"]
    assert "metadata: IPv6 (forced by metadata_ip_version)" in evidence


def test_module_warns_about_garbage_under_ansible(tmp_path, html_port):
    root = FIXTURES / "kvm-plain"
    proc, result = adhoc(tmp_path, f"root={root} metadata_url=http://127.0.0.1:{html_port}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result["ansible_facts"]["vpsnet_cloud"]["provider"] == "unknown"
    # Ansible shows module warnings on stderr, not in the result
    assert "[WARNING]: vpsnet_facts: metadata aws: ignored a garbage answer" in proc.stderr, (
        proc.stderr)


@pytest.mark.parametrize(("args", "message"), [
    ("metadata_timeout=0", "metadata_timeout must be a number of seconds in (0, 60], got '0.0'"),
    ("metadata_timeout=nan", "metadata_timeout must be a number of seconds in (0, 60], got 'nan'"),
    ("metadata_timeout=1e9", "metadata_timeout must be a number of seconds in (0, 60]"),
    ("metadata_url=ftp://169.254.169.254", "metadata_url must be a plain http(s) URL (not an"),
    ("metadata_url=http://u:p@169.254.169.254", "metadata_url must be a plain http(s) URL (cred"),
    ("root=/nonexistent/vpsnet", "root must be an existing directory, got '/nonexistent/vpsnet'"),
    ("metadata_url_ipv6=http://[fd00:ec2::254", "metadata_url_ipv6 must be a plain http(s) URL"),
    ("metadata_ip_version=5", "metadata_ip_version must be one of auto, 4, 6, got '5'"),
])
def test_module_rejects_bad_parameters(tmp_path, args, message):
    """One line naming the parameter and its value, no traceback, nothing queried."""
    if not args.startswith("root="):
        args = f"root={FIXTURES / 'kvm-plain'} {args}"
    proc, result = adhoc(tmp_path, args)
    assert proc.returncode != 0
    assert result["msg"].startswith("vpsnet_facts: " + message), result["msg"]
    assert "Traceback" not in proc.stdout + proc.stderr


PLAYBOOK = """\
- name: Run the vpsnet_facts role on a recorded host
  hosts: localhost
  gather_facts: false
  roles:
    - role: vpsnet_facts
      vars:
        vpsnet_facts_root: "{root}"
        vpsnet_facts_metadata_url: "http://127.0.0.1:{port}"
        vpsnet_facts_expected_provider: "{expected}"
"""


def play(tmp_path: Path, root: Path, port: int, expected: str,
         extra: dict | None = None) -> subprocess.CompletedProcess[str]:
    book = tmp_path / "play.yml"
    book.write_text(PLAYBOOK.format(root=root, port=port, expected=expected))
    args = ["-e", json.dumps(extra)] if extra else []
    return subprocess.run([str(BIN / "ansible-playbook"), "--check", *args, str(book)],
                          capture_output=True, text=True, env=facts_env(tmp_path),
                          timeout=120, check=False)


def test_role_in_check_mode_with_expected_provider(tmp_path, gcp_server):
    srv, _ = gcp_server
    proc = play(tmp_path, FIXTURES / "gcp-gvnic", srv.port, "gcp")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed=0" in proc.stdout and "failed=0" in proc.stdout


def test_role_fails_clearly_on_the_wrong_provider(tmp_path, closed_port):
    proc = play(tmp_path, FIXTURES / "aws-xen", closed_port, "gcp")
    assert proc.returncode != 0
    assert "expected provider 'gcp' but detected 'aws'" in proc.stdout
    assert "xen hypervisor uuid starts with ec2" in proc.stdout


@pytest.mark.parametrize("expected", ["azure"])
def test_role_argument_spec_rejects_unknown_provider(tmp_path, closed_port, expected):
    proc = play(tmp_path, FIXTURES / "aws-xen", closed_port, expected)
    assert proc.returncode != 0
    assert "vpsnet_facts_expected_provider" in proc.stdout


@pytest.mark.parametrize(("extra", "shown"), [
    ({"vpsnet_facts_metadata_timeout": "nan"}, "vpsnet_facts_metadata_timeout="),
    ({"vpsnet_facts_metadata_timeout": 600}, "vpsnet_facts_metadata_timeout="),
    ({"vpsnet_facts_metadata_url": "http://169.254.169.254\nX-Evil: 1"},
     "vpsnet_facts_metadata_url="),
    ({"vpsnet_facts_root": "relative/tree"}, "vpsnet_facts_root="),
    ({"vpsnet_facts_metadata_url_ipv6": "http://[fd00:ec2::zz]"},
     "vpsnet_facts_metadata_url_ipv6="),
    ({"vpsnet_facts_metadata_ip_version": 5}, "vpsnet_facts_metadata_ip_version="),
    ({"vpsnet_facts_metadata_ip_version": "ipv6"}, "vpsnet_facts_metadata_ip_version="),
])
def test_role_refuses_bad_input_before_asking_the_host(tmp_path, aws_server, extra, shown):
    """Validation runs on the controller first: the module never runs, so the metadata
    service sees no request, and the message names the variable."""
    srv, seen = aws_server
    proc = play(tmp_path, FIXTURES / "aws-nitro-ena", srv.port, "", extra)
    assert proc.returncode != 0
    assert shown in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert seen.requests == []
