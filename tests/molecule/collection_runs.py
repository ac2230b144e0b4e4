"""The rollout core's deploy.yml runs as users of the vpsnet.fleet collection make
them: `ansible-playbook vpsnet.fleet.deploy` from the tarball installed with
ansible-galaxy (nothing from the checkout on any path), and `ansible-runner run` in
the execution environment image, over ssh to the same lab guests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from rollout_story import Fleet
from testlib.collection_install import Install, install_collection
from testlib.ee_runner import IMAGE_COLLECTIONS, make_private_data_dir, run_job

from vpsnet_lab.ansible_env import mitogen_env
from vpsnet_lab.fleet import ensure_ssh_key

RUN_TIMEOUT = 3600
# what the checkout's ansible.cfg gives its runs, for the installed and the EE runs
RUN_SETTINGS = {
    "ANSIBLE_HOST_KEY_CHECKING": "False",
    "ANSIBLE_PIPELINING": "True",
    "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
}


def install_for(fleet: Fleet, tmp: Path) -> Install:
    """The collection installed in TMP, run with the fleet's environment (the
    scenario's MOLECULE_* paths its group_vars read) under Mitogen, as the fleet's
    other runs are."""
    install = install_collection(tmp, fleet.env)
    install.env.update(RUN_SETTINGS, **mitogen_env())
    return install


def deploy_from_install(fleet: Fleet, install: Install, version: str,
                        report: Path) -> subprocess.CompletedProcess[str]:
    cmd = ["ansible-playbook", "-i", str(fleet.ephemeral / "inventory"), "vpsnet.fleet.deploy",
           "-e", f"vpsnet_version={version}", "-e", f"vpsnet_upgrade_report_dir={report}"]
    return fleet.run("deploy-installed", cmd, install.env, RUN_TIMEOUT, cwd=install.cwd)


def deploy_in_ee(fleet: Fleet, image: str, version: str,
                 report: Path) -> subprocess.CompletedProcess[str]:
    """`ansible-runner run -p vpsnet.fleet.deploy` in IMAGE on the host's network,
    with the fleet's inventory (links resolved) and ssh key in its data dir, as AWX
    hands them to a job. The records end up in REPORT (the data dir's report/); the
    result is the job's rc and stdout, kept in the fleet's logs as well."""
    pdd = make_private_data_dir(report.parent / "ee")
    shutil.copytree(fleet.ephemeral / "inventory", pdd / "inventory", dirs_exist_ok=True)
    key = pdd / "env" / "lab_key"
    shutil.copyfile(ensure_ssh_key(), key)
    key.chmod(0o600)
    (pdd / "env" / "extravars").write_text(json.dumps({
        "vpsnet_version": version,
        "vpsnet_upgrade_report_dir": "/runner/report",
        "ansible_private_key_file": "/runner/env/lab_key",
    }))
    (pdd / "env" / "envvars").write_text(json.dumps(RUN_SETTINGS))
    job = run_job(image, pdd, "vpsnet.fleet.deploy", "deploy", network="host",
                  timeout=RUN_TIMEOUT)
    (fleet.logs / f"ee-deploy-{version}.log").write_text(job.stdout)
    # the role's task files came from the image's install
    assert f"included: {IMAGE_COLLECTIONS}/vpsnet/fleet/roles/" in job.stdout, job.stdout[-3000:]
    if (pdd / "report").exists():
        shutil.copytree(pdd / "report", report, dirs_exist_ok=True)
    return subprocess.CompletedProcess(["ansible-runner"], job.rc, job.stdout, "")
