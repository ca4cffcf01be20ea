"""``authserver serve`` with several workers and no PROMETHEUS_MULTIPROC_DIR makes one, so /metrics sums
every worker instead of showing whichever answered the scrape."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authserver.metrics import ensure_multiprocess_dir


def test_several_workers_get_a_private_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    directory = ensure_multiprocess_dir(2)
    try:
        assert directory is not None and Path(directory).is_dir()
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == directory  # inherited by the spawned workers
    finally:
        if directory:
            Path(directory).rmdir()


def test_one_worker_or_a_configured_folder_is_left_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    assert ensure_multiprocess_dir(1) is None
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert ensure_multiprocess_dir(4) == str(tmp_path)
