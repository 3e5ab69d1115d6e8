"""Fleet sweeps on a real Dask scheduler and two workers on 127.0.0.1 (processes started
here, each with its own workspace so artifacts really travel by hash): a sweep spread
over both, a worker killed mid-sweep, a client killed and resumed, a host group lost;
rows merged with nothing lost or duplicated. Plus the host selection and the hash
cache without a cluster."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from workbench.errors import UserError
from workbench.fleet import hostside
from workbench.fleet.cluster import connect, start_local
from workbench.fleet.inventory import Host, differences, host_class, host_report
from workbench.fleet.select import select
from workbench.fleet.sweep import FleetOptions, resume_fleet, row_key, run_stored_fleet
from workbench.harness.timing import StopRule
from workbench.procs import child_env
from workbench.results import load
from workbench.sweep import TaskSweep
from workbench.sweep import resume as local_resume

TINY = StopRule(warmup_iters=1, warmup_time_s=0.0, min_iters=5, min_time_s=0.02, max_time_s=1)
DEADLINE_S = 90  # every wait below is bounded


def _sweep(threads: list[int], formats: tuple[str, ...] = ("onnx",)) -> TaskSweep:
    return TaskSweep(
        task="tabular",
        models=["linear"],
        frameworks=["torch"],
        formats=list(formats),
        precisions=["fp32"],
        batch_sizes=[1, 4],
        threads=list(threads),
        rule=TINY,
        end_to_end=False,
    )


# ---- without a cluster ---------------------------------------------------------------


def _host(name: str, **changes: object) -> Host:
    fp = copy.deepcopy(host_report()["fingerprint"])
    for path, value in changes.items():
        node = fp
        *parents, leaf = path.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return Host(f"tcp://10.0.0.{len(name)}:1", name, fp, "id-" + name)


def test_identical_hosts_share_a_class_and_a_library_difference_is_flagged():
    a, b = _host("a", hostname="one"), _host("b", hostname="two")
    assert host_class(a.fingerprint) == host_class(b.fingerprint)
    c = _host("c", libraries__onnx="0.0.1")
    assert host_class(c.fingerprint) != host_class(a.fingerprint)
    diff = differences(a.fingerprint, c.fingerprint)
    assert any(d.startswith("onnx 0.0.1 (client ") for d in diff)
    assert differences(a.fingerprint, b.fingerprint) == []


def test_hosts_are_picked_by_name_and_by_fingerprint_fields():
    flags = dict.fromkeys(host_report()["fingerprint"]["cpu"]["flags"], False)
    vnni = _host("vnni", cpu__flags={**flags, "avx512_vnni": True}, gpu__gpus=[])
    gpu = _host("gpubox", cpu__flags=flags, gpu__gpus=[{"name": "NVIDIA H100 80GB HBM3"}])
    plain = _host("laptop", cpu__flags=flags, gpu__gpus=[])
    hosts = [vnni, gpu, plain]
    assert select(hosts, None) == hosts
    assert select(hosts, "laptop,gpubox") == [gpu, plain]
    assert select(hosts, "avx512_vnni=true") == [vnni]
    assert select(hosts, "gpu=H100") == [gpu]
    assert select(hosts, "gpu=false,avx512_vnni=false") == [plain]
    with pytest.raises(UserError, match="unknown field 'colour'"):
        select(hosts, "colour=red")
    with pytest.raises(UserError, match="no host 'nowhere'"):
        select(hosts, "nowhere")
    with pytest.raises(UserError, match="picks none"):
        select(hosts, "gpu=A100")


def test_rows_of_a_mismatched_host_are_flagged_and_stored_once(workspace):
    from workbench.fleet.sweep import Group, RowWriter
    from workbench.results import RunStore

    host = _host("old", libraries__onnx="0.0.1")
    host.warnings = differences(host_report()["fingerprint"], host.fingerprint)
    store = RunStore.create({"command": "test"})
    writer = RowWriter(store, each_host=False)
    row = {"status": "ok", "model": "linear", "format": "onnx", "batch_size": 1, "threads": 1}
    assert writer.write([row], host, Group(host.host_class, [host]), None) == 1
    assert writer.write([row], host, Group(host.host_class, [host]), None) == 0  # no duplicate
    (stored,) = load(run_ids=[store.run_id]).to_dict(orient="records")
    assert stored["host"] == "old" and stored["host_class"] == host.host_class
    assert stored["host_warning"].startswith("differs from the client: onnx 0.0.1")
    (entry,) = json.loads((store.path / "manifest.json").read_text())["hosts"].values()
    assert entry["warning"] == stored["host_warning"] and entry["fingerprint"]["libraries"]


def test_hash_cache_keeps_sent_bytes_and_refuses_bytes_that_do_not_match(workspace, tmp_path):
    from exporters.base import sha256_of

    src = tmp_path / "model.onnx"
    src.write_bytes(b"not really a model")
    sha = sha256_of(src)
    assert hostside.local_artifact(sha, "model.onnx") is None
    path = hostside.store_artifact(sha, "model.onnx", hostside.read_artifact(str(src)))
    assert Path(path).read_bytes() == src.read_bytes() and path != str(src)
    assert hostside.local_artifact(sha, "model.onnx") == path
    with pytest.raises(ValueError, match="arrived with sha256"):
        hostside.store_artifact("0" * 64, "model.onnx", {"model.onnx": b"other bytes"})
    # a copy already on this host (same filesystem) is used in place, once verified
    other = tmp_path / "b" / "model.onnx"
    other.parent.mkdir()
    other.write_bytes(b"second model")
    assert hostside.local_artifact(sha256_of(other), "model.onnx", str(other)) == str(other)


# ---- on a cluster --------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(module_workspace, tmp_path_factory):
    """A scheduler and two benchmark workers, each worker with its own workspace."""
    root = tmp_path_factory.mktemp("fleet")
    homes = [{"WORKBENCH_HOME": str(root / f"host-{i}")} for i in range(2)]
    with start_local(2, port=0, worker_env=homes, nanny=False, workdir=root / "cluster") as c:
        c.homes = [Path(h["WORKBENCH_HOME"]) for h in homes]
        yield c


def _rows(run_id: str):
    frame = load(run_ids=[run_id])
    return frame.to_dict(orient="records")


def _assert_exactly_once(rows, expected: int) -> None:
    keys = Counter((row_key(r), r["host_class"]) for r in rows)
    assert len(rows) == expected, [(r["host"], r["threads"], r["batch_size"]) for r in rows]
    assert all(n == 1 for n in keys.values()), keys


def test_sweep_spreads_over_both_hosts_with_rows_merged_in_one_run(cluster):
    sweep = _sweep(threads=[1, 2, 3, 4])
    options = FleetOptions(cluster=cluster.address, share_paths=False)
    store = run_stored_fleet(sweep, options)
    rows = _rows(store.run_id)
    _assert_exactly_once(rows, expected=4 * 2)
    assert {r["status"] for r in rows} == {"ok"}, {r["error"] for r in rows}
    assert {r["host"] for r in rows} == {"host-0", "host-1"}
    assert len({r["host_class"] for r in rows}) == 1
    # each row carries its host's fingerprint, kept whole in the run's manifest
    manifest = json.loads((store.path / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    stored = {(h["host"], h["fingerprint_id"]) for h in manifest["hosts"].values()}
    assert {(r["host"], r["fingerprint_id"]) for r in rows} <= stored
    assert all(h["fingerprint"]["cpu"] for h in manifest["hosts"].values())
    assert {r["host_warning"] for r in rows} == {None}
    # the artifact was exported once, here, and sent by hash to each host's own cache
    sha = rows[0]["artifact_sha256"]
    for home in cluster.homes:
        cached = home / "artifacts" / "by-sha256" / sha
        assert (cached / ".complete").exists() and (cached / "model.onnx").exists()
        assert not (home / "artifacts" / "tabular-linear").exists()  # not exported there
    assert all(r["artifact_path"].startswith(str(cluster.homes[0].parent)) for r in rows)
    # the notebook layer lines the hosts up: one class here, so one column named by both
    from workbench import study

    table = study.cross_host(load(run_ids=[store.run_id]))
    assert len(table) == 8 and "host-0+host-1" in table.columns


def test_the_local_cluster_listens_on_loopback_only(cluster):
    import psutil

    procs = [cluster.scheduler.pid, *(w.pid for w in cluster.workers)]
    pids = set(procs) | {c.pid for p in procs for c in psutil.Process(p).children(recursive=True)}
    listening = [
        c.laddr for c in psutil.net_connections("inet") if c.status == "LISTEN" and c.pid in pids
    ]
    assert listening and {a.ip for a in listening} == {"127.0.0.1"}, listening


def test_cli_lists_the_hosts_and_refuses_fleet_flags_out_of_place(cluster, capsys):
    from workbench.cli import main

    assert main(["cluster", "hosts", "--cluster", cluster.address]) == 0
    out = capsys.readouterr().out
    assert "host-0" in out and "host-1" in out and "class " in out
    assert main(["cluster", "hosts", "--cluster", cluster.address, "--hosts", "gpu=H100"]) == 2
    assert "picks none of the cluster's hosts" in capsys.readouterr().err
    assert main(["bench", "--task", "tabular", "--hosts", "host-0"]) == 2
    assert "add --cluster" in capsys.readouterr().err
    assert main(["bench", "model.onnx", "--cluster", cluster.address]) == 2
    assert "--cluster runs task sweeps" in capsys.readouterr().err
    assert main(["bench", "--task", "tabular", "--cluster", "localhost:1"]) == 2
    assert "tcp://HOST:8786" in capsys.readouterr().err


def _wait_until(check, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _busy(home: Path) -> bool:
    """A configuration is being measured on the host with this workspace."""
    scratch = home / "fleet-scratch"
    return scratch.is_dir() and any(scratch.iterdir())


def test_client_killed_mid_sweep_then_resume_finishes_the_run(cluster, module_workspace):
    """The CLI run is killed after its first rows; --resume measures only the rest."""
    runs = module_workspace / "runs"
    before = set(os.listdir(runs)) if runs.exists() else set()
    cmd = [
        sys.executable,
        "-m",
        "workbench.cli",
        "bench",
        "--task",
        "tabular",
        "--model",
        "linear",
        "--frameworks",
        "torch",
        "--formats",
        "onnx",
        "--precisions",
        "fp32",
        "--batch",
        "1,4",
        "--threads",
        "1,2,3",
        "--min-iters",
        "5",
        "--min-time",
        "0.02",
        "--max-time",
        "1",
        "--warmup",
        "1",
        "--no-end-to-end",
        "--cluster",
        cluster.address,
    ]
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:

        def first_rows() -> bool:
            new = set(os.listdir(runs)) - before if runs.exists() else set()
            rows = runs / next(iter(new)) / "rows.jsonl" if new else None
            return rows is not None and rows.exists() and rows.stat().st_size > 0

        _wait_until(first_rows, "the first stored rows")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    (run_id,) = set(os.listdir(runs)) - before
    kept = len(_rows(run_id))
    assert 0 < kept < 6
    store, missing = resume_fleet(run_id)
    rows = _rows(run_id)
    _assert_exactly_once(rows, expected=3 * 2)
    assert len(missing) == 6 - kept
    assert {r["status"] for r in rows} == {"ok"}
    assert json.loads((store.path / "manifest.json").read_text())["status"] == "ok"
    assert resume_fleet(run_id)[1] == []  # nothing left to do
    with pytest.raises(UserError, match="was a fleet sweep"):
        local_resume(run_id)  # never measured on the client by mistake


def test_lost_host_without_a_peer_leaves_failure_rows_with_the_reason(tmp_path, module_workspace):
    """--each-host: every host is its own group, so a lost host's configurations have
    nowhere else to go and become failed rows saying why; the other host's are whole."""
    homes = [{"WORKBENCH_HOME": str(tmp_path / f"h{i}")} for i in range(2)]
    with start_local(2, port=0, worker_env=homes, nanny=False, workdir=tmp_path / "c") as c:
        options = FleetOptions(c.address, each_host=True, poll_s=0.2, rejoin_grace_s=1)
        done: dict[str, object] = {}
        sweep = _sweep(threads=[1, 2, 3])
        worker = threading.Thread(
            target=lambda: done.setdefault("store", run_stored_fleet(sweep, options))
        )
        worker.start()
        _wait_until(lambda: _busy(Path(homes[1]["WORKBENCH_HOME"])), "host-1 to be measuring")
        c.kill_worker(1)
        worker.join(DEADLINE_S)
        assert not worker.is_alive()
    rows = _rows(done["store"].run_id)
    assert len(rows) == 2 * 3 * 2
    assert Counter((row_key(r), r["host"]) for r in rows).most_common(1)[0][1] == 1
    on_0 = [r for r in rows if r["host"] == "host-0"]
    on_1 = [r for r in rows if r["host"] == "host-1"]
    assert {r["status"] for r in on_0} == {"ok"}
    failed = [r for r in on_1 if r["status"] == "failed"]
    assert failed and all("left the cluster" in r["error"] for r in failed)


def test_worker_restarted_by_its_nanny_gets_its_configurations_back(tmp_path, module_workspace):
    """--each-host, workers under a nanny: killing host-1's worker process (not the host)
    brings it back at a new address under the same name, and its configurations are
    submitted to it again: every row ok, each exactly once."""
    import psutil

    homes = [{"WORKBENCH_HOME": str(tmp_path / f"h{i}")} for i in range(2)]
    with start_local(2, port=0, worker_env=homes, nanny=True, workdir=tmp_path / "c") as c:
        options = FleetOptions(cluster=c.address, each_host=True, poll_s=0.2)
        done: dict[str, object] = {}
        sweep = _sweep(threads=[1, 2])
        worker = threading.Thread(
            target=lambda: done.setdefault("store", run_stored_fleet(sweep, options))
        )
        worker.start()
        _wait_until(lambda: _busy(Path(homes[1]["WORKBENCH_HOME"])), "host-1 to be measuring")
        nanny = psutil.Process(c.workers[1].pid)
        (proc,) = [p for p in nanny.children() if "spawn_main" in " ".join(p.cmdline())]
        proc.kill()
        worker.join(DEADLINE_S)
        assert not worker.is_alive()
    rows = _rows(done["store"].run_id)
    assert len(rows) == 2 * 2 * 2
    assert Counter((row_key(r), r["host"]) for r in rows).most_common(1)[0][1] == 1
    assert {r["status"] for r in rows} == {"ok"}, {r["error"] for r in rows}
    assert Counter(r["host"] for r in rows) == {"host-0": 4, "host-1": 4}


def test_another_architecture_exports_once_on_its_own_host_and_shares_by_hash(cluster):
    """Hosts whose architecture differs from the client's (faked here: both workers say
    `other-arch`) get the artifact exported once, on the first of them, and the second
    receives the bytes from it, worker to worker."""
    from exporters.base import ArtifactRequest
    from workbench.fleet.artifacts import export_all, settle, stage
    from workbench.fleet.inventory import inventory

    # (not the ONNX file the other tests already put in every host's cache)
    request = ArtifactRequest("tabular", "linear", "torch", "torchscript", "fp32")
    with connect(cluster.address) as client:
        hosts, _ = inventory(client)
        for h in hosts:
            h.fingerprint["os"]["machine"] = "other-arch"
        manifests = export_all(client, {("k",): request}, hosts)
        assert set(manifests) == {"other-arch"}
        manifest = manifests["other-arch"][("k",)]
        assert manifest["status"] == "ok" and manifest["exported_on"] == hosts[0].address
        assert stage(client, hosts, manifests) == {}
        # a task pinned to a host that is not (or no longer) there is given up, not awaited
        gone = "tcp://127.0.0.1:9"
        fut = client.submit(hostside.whoami, pure=False, workers=[gone], allow_other_workers=False)
        started = time.monotonic()
        settle(client, [(gone, fut)])
        assert time.monotonic() - started < 10 and fut.status == "cancelled"
    sha = manifest["sha256"]
    exporter, receiver = (cluster.homes[int(h.name[-1])] for h in hosts)
    assert (exporter / "artifacts" / "tabular-linear").is_dir()  # exported there...
    assert (exporter / "artifacts" / "by-sha256" / sha / ".link").exists()
    assert not (receiver / "artifacts" / "tabular-linear").exists()  # ...and only there
    assert (receiver / "artifacts" / "by-sha256" / sha / ".complete").exists()


def test_worker_killed_mid_sweep_its_configuration_reruns_on_the_other_host(cluster):
    """Runs last on the module's cluster: it kills host-1."""
    with connect(cluster.address) as client:
        options = FleetOptions(cluster=cluster.address, poll_s=0.2)
        done: dict[str, object] = {}
        sweep = _sweep(threads=[1, 2, 3, 4, 5])
        worker = threading.Thread(
            target=lambda: done.setdefault("store", run_stored_fleet(sweep, options, client))
        )
        worker.start()
        _wait_until(lambda: _busy(cluster.homes[1]), "host-1 to be measuring")
        cluster.kill_worker(1)
        worker.join(DEADLINE_S)
        assert not worker.is_alive()
    rows = _rows(done["store"].run_id)
    _assert_exactly_once(rows, expected=5 * 2)
    assert {r["status"] for r in rows} == {"ok"}, {r["error"] for r in rows}
    # host-1 died mid-configuration: that one (at least) was measured by host-0 instead
    on_1 = {r["threads"] for r in rows if r["host"] == "host-1"}
    assert len(on_1) < 5 and {r["host"] for r in rows} >= {"host-0"}


def test_cross_host_table_lines_hosts_up_and_flags_a_mismatched_one():
    import pandas as pd

    from workbench.report.fleet import cross_host_plot, cross_host_table

    base = {
        "status": "ok",
        "model": "mlp",
        "source_framework": "torch",
        "format": "onnx",
        "precision": "fp32",
        "runtime": "onnxruntime",
        "device": "cpu",
        "threads": 4,
        "seq_len": None,
        "host_warning": None,
    }
    rows = [
        {**base, "host": "laptop", "host_class": "a", "batch_size": 1, "latency_ms_p50": 2.0},
        {**base, "host": "server", "host_class": "b", "batch_size": 1, "latency_ms_p50": 0.5},
        {**base, "host": "laptop", "host_class": "a", "batch_size": 8, "latency_ms_p50": 9.0},
        {**base, "host": "server", "host_class": "b", "batch_size": 8, "latency_ms_p50": 3.0},
        {**base, "host": "server", "host_class": "b", "batch_size": 8, "status": "failed"},
        {
            **base,
            "host": "gpubox",
            "host_class": "c",
            "batch_size": 1,
            "latency_ms_p50": 0.1,
            "host_warning": "differs from the client: onnx 1.0 (client 1.1)",
        },
    ]
    table = cross_host_table(pd.DataFrame(rows), each_host=True)
    assert list(table["batch_size"]) == [1, 8]
    assert set(table.columns) >= {"laptop", "server", "gpubox (!)", "slowest/fastest"}
    assert table["slowest/fastest"].tolist() == pytest.approx([20.0, 3.0])
    assert table["gpubox (!)"].isna().tolist() == [False, True]
    # by class, identical hosts share one column named by them
    twins = pd.DataFrame([{**r, "host_class": "a"} for r in rows[:4]])
    assert [c for c in cross_host_table(twins).columns if "+" in c] == ["laptop+server"]
    assert cross_host_plot(table, "caption").axes  # draws without error
