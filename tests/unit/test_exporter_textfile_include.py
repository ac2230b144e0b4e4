"""vpsnet-exporter --textfile-include: the *.prom files of a directory (vpsnet_tune's
drift metric) served with the module's families, each file whole or not at all."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry
from testlib.vpsnet_exporter_helpers import metrics_text

from vpsnet_tools import exporter, exporter_metrics

from .test_exporter import MODULE_FAMILIES, scrape, value

REPO = Path(__file__).resolve().parents[2]


def _vpsnet_tune() -> ModuleType:
    path = REPO / "roles/vpsnet_tune/files/vpsnet-tune"
    loader = importlib.machinery.SourceFileLoader("vpsnet_tune_cli_x", str(path))
    spec = importlib.util.spec_from_loader("vpsnet_tune_cli_x", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _registry(tmp_path: Path) -> tuple[CollectorRegistry, Path]:
    metrics = tmp_path / "metrics"
    metrics.write_text(metrics_text())
    include = tmp_path / "textfile"
    include.mkdir()
    reg, _ = exporter_metrics.make_registry(str(metrics), str(include))
    return reg, include


def test_vpsnet_tune_metric_served_beside_the_module(tmp_path: Path) -> None:
    reg, include = _registry(tmp_path)
    _vpsnet_tune().write_textfile(str(include), 3, True)  # what vpsnet-tune verify writes
    fams = scrape(reg)
    assert set(fams) >= MODULE_FAMILIES
    assert value(fams, "vpsnet_up") == 1
    assert value(fams, "vpsnet_tune_drift_items") == 3
    assert value(fams, "vpsnet_tune_verify_success") == 1
    assert value(fams, "vpsnet_tune_verify_timestamp_seconds") > 1.7e9


def test_bad_or_clashing_files_left_out_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg, include = _registry(tmp_path)
    (include / "a_good.prom").write_text("# TYPE x_good gauge\nx_good 1\n")
    (include / "b_bad.prom").write_text("# TYPE x_bad gauge\nx_bad 1\nx_bad{ 2\n")
    (include / "c_clash.prom").write_text(
        "# TYPE x_c gauge\nx_c 1\n# TYPE vpsnet_up gauge\nvpsnet_up 1\n")
    (include / "d_dup.prom").write_text("# TYPE x_good gauge\nx_good 2\n")
    (include / "vpsnet.prom").write_text("# TYPE x_self gauge\nx_self 1\n")  # --textfile's own
    (include / "e.txt").write_text("# TYPE x_txt gauge\nx_txt 1\n")
    with caplog.at_level(logging.WARNING, logger="vpsnet-exporter"):
        fams = scrape(reg)
    assert value(fams, "x_good") == 1
    assert not {"x_bad", "x_c", "x_self", "x_txt"} & set(fams)
    assert value(fams, "vpsnet_up") == 1 and len(fams["vpsnet_up"]) == 1
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 3 and "vpsnet_up" in left_out[1] and "x_good" in left_out[2]


def test_no_directory_no_families(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.write_text(metrics_text())
    reg, _ = exporter_metrics.make_registry(str(metrics), str(tmp_path / "missing"))
    assert set(scrape(reg)) >= MODULE_FAMILIES


def test_cli_default_is_vpsnet_textfile_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str | None]] = []

    def fake(path: str, include: str | None = None):  # type: ignore[no-untyped-def]
        seen.append((path, include))
        raise SystemExit(0)

    monkeypatch.setattr(exporter, "make_registry", fake)
    for argv, want in (([], "/var/lib/vpsnet/textfile"), (["--textfile-include", ""], ""),
                       (["--textfile-include", str(tmp_path)], str(tmp_path))):
        with pytest.raises(SystemExit):
            exporter.main(["--file", "/nonexistent", *argv])
        assert seen.pop() == ("/nonexistent", want)
