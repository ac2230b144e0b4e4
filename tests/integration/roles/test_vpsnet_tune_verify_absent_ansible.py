"""vpsnet_tune's undo (tasks/absent.yml) run by a real ansible-playbook against localhost
in check mode (nothing on this machine changes), with the record in a temporary
directory: absent fails without a record and says what to do (and goes on when told
to), reports the changes a record asks for and makes none."""

from __future__ import annotations

from pathlib import Path

from .test_vpsnet_tune_verify_ansible import ABSENT_PLAY, play, record_file


def test_absent_without_a_record_fails_saying_what_to_do(tmp_path: Path) -> None:
    rc, out = play(tmp_path, ABSENT_PLAY, "-e", f"__vpsnet_tune_original_dir={tmp_path}/none")
    assert rc != 0
    assert "no record of localhost's own values" in out
    assert "set vpsnet_tune_absent_without_record=true" in out
    rc, out = play(tmp_path, ABSENT_PLAY, "-e", f"__vpsnet_tune_original_dir={tmp_path}/none",
                   "-e", "vpsnet_tune_absent_without_record=true")
    assert rc == 0 and "failed=0" in out, out


def test_absent_reports_the_changes_in_check_mode_and_makes_none(tmp_path: Path) -> None:
    record = tmp_path / "record"
    live = Path("/proc/sys/net/core/somaxconn").read_text().strip()
    record_file(record, str(int(live) + 1))
    rc, out = play(tmp_path, ABSENT_PLAY, "-e", f"__vpsnet_tune_original_dir={record}")
    assert rc == 0, out
    assert f"would restore sysctl net.core.somaxconn: {int(live) + 1}" in out
    assert (record / "original.json").exists() and not (tmp_path / "record.restored").exists()
    assert Path("/proc/sys/net/core/somaxconn").read_text().strip() == live
