"""tf.distribute: MirroredStrategy on two logical CPUs and MultiWorkerMirroredStrategy on two
local processes give the single-device update; only the chief writes; resuming works."""

import json
import os
import socket
import subprocess
import sys

import pytest

from helpers import ROOT, SUBPROCESS_ENV, make_dataset

HELPER = os.path.join(ROOT, "tests", "dist_helper.py")


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def _run_workers(argv_for, timeout=240):
    """Start two workers on 127.0.0.1; both must finish (they stop by themselves) within timeout."""
    ports = _free_ports(2)
    procs = []
    for i in range(2):
        env = dict(SUBPROCESS_ENV, TF_CONFIG=_tf_config(ports, i))
        procs.append(subprocess.Popen([sys.executable] + argv_for(i), cwd=ROOT, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
    return outs


def _check(result):
    assert result["replicas"] == 2
    assert result["moved"] > 1e-6  # the step really changed the weights
    assert result["max_rel_diff"] < 1e-5
    assert result["loss"] == pytest.approx(result["ref_loss"], rel=1e-5)


@pytest.mark.slow  # > ~8 s on 2 cores; make test and CI run it
def test_mirrored_two_cpus_equals_one_device(tmp_path):
    out = tmp_path / "mirrored.json"
    proc = subprocess.run([sys.executable, HELPER, "mirrored", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, env=SUBPROCESS_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check(json.loads(out.read_text()))


@pytest.mark.slow  # > ~8 s on 2 cores; make test and CI run it
def test_mirrored_two_cpus_with_iter_size_2_equals_one_device(tmp_path):
    out = tmp_path / "mirrored_iter.json"
    proc = subprocess.run([sys.executable, HELPER, "mirrored_iter_size", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, env=SUBPROCESS_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check(json.loads(out.read_text()))


@pytest.mark.slow  # > ~8 s on 2 cores; make test and CI run it
def test_multi_worker_two_processes_equals_one_device(tmp_path):
    out = tmp_path / "mw.json"
    _run_workers(lambda i: [HELPER, "multi_worker", str(out)])
    _check(json.loads(out.read_text()))


@pytest.mark.slow  # ~30-60 s on 2 cores; still run in CI
def test_multi_worker_training_writes_only_from_the_chief_and_resumes(tmp_path):
    list_path = make_dataset(str(tmp_path), 4)
    snap = tmp_path / "snap"

    def argv(steps):
        return lambda i: ["train.py", "--strategy", "multi_worker", "--data_dir", str(tmp_path), "--data_list",
                          list_path, "--snapshot_dir", str(snap), "--save_dir", str(tmp_path / f"img{i}"),
                          "--input_size", "48,48", "--batch_size", "4", "--num_steps", str(steps),
                          "--width_multiplier", "0.125", "--save_pred_every", "2", "--save_num_images", "1"]

    outs = _run_workers(argv(3))
    assert "2 replica(s)" in outs[0] and "Training finished at step 3" in outs[0]
    files = sorted(os.listdir(snap))
    assert [f for f in files if f.endswith(".index")] == ["model.ckpt-0.index", "model.ckpt-2.index",
                                                          "model.ckpt-3.index"]
    assert set(files) - {"checkpoint", "logs", ".lock", "run.json", "classes.json"} - {
        f for f in files if f.startswith("model.ckpt-")} == set()
    assert json.loads((snap / "classes.json").read_text())["names"][1] == "aeroplane"  # written by the chief
    assert json.loads((snap / "run.json").read_text())["settings"]["strategy"] == "multi_worker"
    assert os.listdir(tmp_path / "img0") and not os.path.exists(tmp_path / "img1")  # figures: chief only

    outs = _run_workers(argv(5))
    for out in outs:
        assert f"Resuming from {snap}/model.ckpt-3" in out and "from step 3 to 5" in out
    assert "Training finished at step 5" in outs[0]
