"""`train --strategy multi-worker`: two local worker processes joined by TF_CONFIG over localhost, as on two
machines. Each reads its own half of the training frames, only the chief writes OUT, and what it wrote loads
and evaluates."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess

import segnet_edge
from tests.conftest import CLI, REPO


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_two_workers_share_an_epoch_and_only_the_chief_writes(camvid_sample, tmp_path):
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    outs = [tmp_path / f"worker{i}" for i in range(2)]  # one OUT per machine: only the chief's fills
    workers = []
    for index, out in enumerate(outs):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        args = ["train", "--data", str(camvid_sample), "--out", str(out), "--strategy", "multi-worker",
                "--arch", "segnet-basic", "--alpha", "0.25", "--input-size", "32x48", "--epochs", "1",
                "--batch-size", "4", "--optimizer", "adam", "--lr", "0.001", "--input-pipeline", "stream"]
        workers.append(subprocess.Popen([*CLI, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
    try:
        results = [worker.communicate(timeout=240) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (stdout, stderr) in zip(workers, results):
        assert worker.returncode == 0, stderr[-3000:]
        assert json.loads(stdout.splitlines()[-1])["epochs"] == 1
    # each worker reads its own shard: 12 training frames, 6 each, none twice in the epoch
    shares = []
    for _, stderr in results:
        line = re.search(r"worker (\d)/(\d): reads (\d+) of (\d+) training frames per epoch \((\d+) steps", stderr)
        assert line, stderr[-3000:]
        shares.append(tuple(int(v) for v in line.groups()))
    assert sorted(s[0] for s in shares) == [1, 2] and all(s[1] == 2 for s in shares)
    assert [s[2] for s in shares] == [6, 6] and all(s[3] == 12 and s[4] == 3 for s in shares)
    assert "streamed from disk" in results[0][1]
    chief, other = outs
    assert (chief / "best.h5").is_file() and (chief / "last.h5").is_file() and (chief / "log.csv").is_file()
    assert not other.exists()  # the other worker saved into a folder of its own, since removed
    from segnet_edge.evaluate import EvaluateConfig, evaluate

    segnet_edge.load_model(chief / "best.h5")
    report = evaluate(EvaluateConfig(model=str(chief / "best.h5"), data=str(camvid_sample), split="val",
                                     input_pipeline="stream"))
    assert report.frames == 4 and 0 <= report.scores.mean_iou <= 1
