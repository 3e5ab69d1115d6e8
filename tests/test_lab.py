"""A real JupyterLab: started on loopback with a free port and a token (as `make lab` starts
it, from the venv), GET /lab answers 200 and the server's API lists the `workbench`
kernelspec; then it is shut down. Bounded: 120 s to come up, 20 s to stop."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_jupyterlab_serves_lab_and_the_workbench_kernel(tmp_path: Path) -> None:
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        # keep the test's runtime files and config out of the user's ~/.jupyter
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
    }
    log = (tmp_path / "lab.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--port-retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={REPO / 'notebooks'}",
            *(["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"jupyter lab exited with {proc.returncode}: "
                    + (tmp_path / "lab.log").read_text()[-2000:]
                )
            try:
                if _get(f"{base}/api/status", token)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "jupyter lab did not answer within 120 s"
            time.sleep(0.5)

        status, body = _get(f"{base}/lab", token)
        assert status == 200
        assert b"JupyterLab" in body or b"jupyter" in body.lower()

        status, body = _get(f"{base}/api/kernelspecs", token)
        assert status == 200
        specs = json.loads(body)["kernelspecs"]
        assert "workbench" in specs, sorted(specs)
        assert specs["workbench"]["spec"]["display_name"] == "Python (workbench)"

        assert _get(f"{base}/api/kernelspecs", "wrong-token")[0] == 403  # the token is enforced
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
