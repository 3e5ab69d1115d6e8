"""Reach a Dask cluster, or start a small one on this machine.

`start_local` runs `dask scheduler` and N `dask worker --nworkers 1 --nthreads 1
--resources bench_host=1` as child processes of this one, on 127.0.0.1. It is for
trying the fleet path and for tests: the workers share this machine's cores, so their
timings must not be compared with each other or with a real fleet.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import UserError
from workbench.fleet.inventory import RESOURCE
from workbench.procs import child_env

CONNECT_TIMEOUT_S = 30


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
    """A `distributed.Client` on the scheduler at `address` (e.g. tcp://host:8786), or a
    UserError saying it cannot be reached."""
    # lazy: distributed
    from distributed import Client

    if "://" not in address:
        raise UserError(
            f"--cluster wants a scheduler address like tcp://HOST:8786, got {address!r}"
        )
    try:
        return Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UserError(
            f"cannot reach the Dask scheduler at {address} within {timeout_s:.0f} s ({exc}): "
            "start one (`workbench cluster up --local 2`, or `dask scheduler` on a host)"
        ) from None


@dataclass
class LocalCluster:
    """A scheduler and workers started by `start_local`; `close()` stops them all."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workdir: Path | None = None

    def kill_worker(self, index: int) -> None:
        """Kill worker `index` and everything it started (as a host that dies would)."""
        _kill_group(self.workers[index])

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                _kill_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 3  # a clean exit, else they are killed
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(proc)
            # what the child started in its group (a nanny's worker) goes with it, even
            # when the child itself has exited
            _kill_group(proc)
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass  # SIGKILLed: the kernel reaps it once its parent (this process) exits

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child in its own session (so it and its children can be killed together), its
    output in `log`."""
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", *argv],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def start_local(
    n_workers: int,
    port: int = 8786,
    host: str = "127.0.0.1",
    worker_env: list[dict[str, str]] | None = None,
    nanny: bool = True,
    timeout_s: float = 60,
    workdir: Path | None = None,
) -> LocalCluster:
    """Start a scheduler on `host:port` (0: any free port) and `n_workers` benchmark
    workers named host-0, host-1, ...; `worker_env[i]` adds variables to worker i's
    environment (e.g. its own WORKBENCH_HOME). Returns once every worker has joined."""
    if n_workers < 1:
        raise UserError(f"--local wants at least one worker, got {n_workers}")
    workdir = workdir or Path(tempfile.mkdtemp(prefix="workbench-cluster-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sched_file = workdir / "scheduler.json"
    sched_file.unlink(missing_ok=True)
    scheduler = _spawn(
        [
            "distributed.cli.dask_scheduler",
            "--host",
            host,
            "--port",
            str(port),
            "--no-dashboard",
            "--dashboard-address",  # its HTTP server (health, metrics) runs regardless
            f"{host}:0",
            "--scheduler-file",
            str(sched_file),
        ],
        child_env(),
        workdir / "scheduler.log",
    )
    cluster = LocalCluster("", scheduler, workdir=workdir)
    try:
        cluster.address = _wait_for_scheduler(scheduler, sched_file, workdir, timeout_s)
        for i in range(n_workers):
            extra = (worker_env or [{}] * n_workers)[i] if worker_env else {}
            argv = [
                "distributed.cli.dask_worker",
                cluster.address,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--resources",
                f"{RESOURCE}=1",
                "--name",
                f"host-{i}",
                "--host",
                host,
                "--no-dashboard",
                "--dashboard-address",
                f"{host}:0",
                "--local-directory",
                str(workdir / f"worker-{i}"),
            ]
            if not nanny:
                argv.append("--no-nanny")
            cluster.workers.append(_spawn(argv, child_env(**extra), workdir / f"worker-{i}.log"))
        _wait_for_workers(cluster, n_workers, timeout_s)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _wait_for_scheduler(
    proc: subprocess.Popen[bytes], sched_file: Path, workdir: Path, timeout_s: float
) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(
                f"the Dask scheduler exited ({proc.returncode}): see {workdir / 'scheduler.log'}"
                " (is the port taken? pass another with --port)"
            )
        try:
            return str(json.loads(sched_file.read_text())["address"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.2)
    raise UserError(f"the Dask scheduler did not start within {timeout_s:.0f} s")


def _wait_for_workers(cluster: LocalCluster, n: int, timeout_s: float) -> None:
    # lazy: distributed
    from distributed import Client

    with Client(cluster.address, timeout=timeout_s, set_as_default=False) as client:
        deadline = time.monotonic() + timeout_s
        while len(client.scheduler_info(n_workers=-1)["workers"]) < n:
            dead = [i for i, w in enumerate(cluster.workers) if w.poll() is not None]
            if dead:
                raise UserError(
                    f"Dask worker(s) {dead} exited at start: see {cluster.workdir}/worker-N.log"
                )
            if time.monotonic() > deadline:
                raise UserError(f"{n} Dask workers did not join within {timeout_s:.0f} s")
            time.sleep(0.2)
