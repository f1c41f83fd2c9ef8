"""bench/torch_peer.py: the PyTorch side-by-side row keeps its shape, and is skipped without PyTorch."""

import importlib.util
import json
import os
import sys

import pytest

from helpers import ROOT


def _load_peer():
    spec = importlib.util.spec_from_file_location("torch_peer", os.path.join(ROOT, "bench", "torch_peer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peer_rows_are_skipped_without_torch(monkeypatch):
    peer = _load_peer()
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert peer.peer_rows() == {"skipped": "torch not installed"}
    assert peer.peer_train_rows() == {"skipped": "torch not installed"}
    assert "skipped" in peer.format_rows(peer.peer_rows())


def test_tiny_peer_rows(capsys):
    pytest.importorskip("torch")
    peer = _load_peer()
    assert peer.main(["--tiny", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["width_multiplier"] == 0.125 and result["rounds"] == 1 and result["batch"] == 1
    assert sorted(result["sizes"]) == ["33", "65"] and result["target_met"] is None
    for size, row in result["sizes"].items():
        assert row["ratio"] == pytest.approx(row["torch_median_s"] / row["ours_median_s"])
        assert row["ratio_of_mins"] == pytest.approx(row["torch_min_s"] / row["ours_min_s"])
        assert 0 < row["ours_min_s"] <= row["ours_median_s"] and 0 < row["torch_min_s"] <= row["torch_median_s"]
        assert len(row["round_ratios"]) == 1 and row["target_ratio"] is None and row["target_met"] is None
        assert row["quiet"] in (True, False, None)
        assert row["labels_agree"] > 0.99  # the same weights: the twin computes the same net
    assert len(peer.format_rows(result).splitlines()) == 4  # the header, the column names, one line per size


def test_tiny_peer_train_rows(capsys):
    pytest.importorskip("torch")
    peer = _load_peer()
    assert peer.main(["--tiny", "--train", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["batch"] == 2 and result["sizes"] == [33] and isinstance(result["train"], dict)
    row = result["train"]
    assert row["ratio"] == pytest.approx(row["torch_median_s"] / row["ours_median_s"]) and row["target_met"] is None
    assert "labels_agree" not in row and result["target_met"] is None


def test_bench_rows_are_one_note_without_torch(monkeypatch):
    peer = _load_peer()
    monkeypatch.setitem(sys.modules, "torch", None)
    for tiny in (True, False):  # never starts a worker: the note comes first
        result = peer.bench_rows(tiny=tiny)
        assert result["skipped"].startswith("torch not installed") and result["target_met"] is None
        assert json.loads(json.dumps(result)) == result  # what bench.py --json prints
    line = peer.format_bench_rows(result)
    assert len(line.splitlines()) == 1 and line.startswith("PyTorch side by side: skipped (torch not installed")


def test_tiny_bench_rows():
    pytest.importorskip("torch")
    peer = _load_peer()
    result = peer.bench_rows(tiny=True)
    assert result["target_met"] is None  # the slim net: no target is judged
    inference, train = result["inference"], result["train"]
    assert sorted(inference["sizes"]) == ["33", "65"] and inference["width_multiplier"] == 0.125
    assert inference["path"] == "predictor" and train["sizes"] == [33] and train["batch"] == 2
    for row in list(inference["sizes"].values()) + [train["train"]]:
        assert row["ours_median_s"] > 0 and row["torch_median_s"] > 0 and row["target_met"] is None
        assert row["ratio"] == pytest.approx(row["torch_median_s"] / row["ours_median_s"])
    lines = peer.format_bench_rows(result).splitlines()
    assert len(lines) == 4 + 3 + 1 and lines[-1].endswith("not judged (slim net, or other processes were busy)")
