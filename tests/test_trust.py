"""Trust: no user file is unpickled, and user strings are escaped in every HTML output.

A .pt2 whose sample inputs hold a pickle payload runs it under a plain
`torch.export.load` (checked here, so the test can fail) but not under the workbench's
torch runtime; archives with pickled constants and torch.save checkpoints are refused;
the source tree calls no unsafe loader. A model file named like an HTML attack goes
through the CLI, the run report, the report index and a notebook table as text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from tests.support.cli import FAST, REPO, run_cli
from tests.support.model_files import unnamed_dims_onnx
from workbench.errors import UserError
from workbench.trust import refuse_pickled_objects

# no "/" (a path separator), but markup, both quotes, an ampersand, a newline, and
# broken mathtext (which once failed every plot of the report)
HOSTILE = "<img src=x onerror=\"alert('pwn')\">&\n<script>$\\frac{$x.onnx"

_POISONED_PT2 = r"""
import io, json, os, sys, zipfile, torch

class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {sys.argv[2]}",))

class M(torch.nn.Module):
    def forward(self, x):
        return x * 2

src = sys.argv[1] + ".clean"
torch.export.save(torch.export.export(M(), (torch.ones(2, 4),)), src)
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(sys.argv[1], "w") as zout:
    for name in zin.namelist():
        data = zin.read(name)
        if "sample_inputs" in name:
            buf = io.BytesIO()
            torch.save(Payload(), buf)
            data = buf.getvalue()
        zout.writestr(name, data)
"""

_LOAD = r"""
import json, sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
how, path = sys.argv[1], sys.argv[2]
try:
    if how == "plain":
        import torch
        torch.export.load(path)
    else:
        from workbench.devices import parse_device
        from workbench.registry import get_runtime
        from workbench.runtimes.base import RuntimeOptions
        get_runtime("torch").load(Path(path), RuntimeOptions(parse_device("cpu"), 1, format="pt2"))
    print(json.dumps({"loaded": True}))
except Exception as exc:
    print(json.dumps({"loaded": False, "error": str(exc).splitlines()[0] if str(exc) else ""}))
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_a_pickle_payload_in_a_pt2_never_runs(tmp_path):
    pytest.importorskip("torch")
    model, marker = tmp_path / "poisoned.pt2", tmp_path / "pwned"
    made = _python(_POISONED_PT2, str(model), str(marker))
    assert made.returncode == 0, made.stderr[-2000:]
    assert not marker.exists()
    # the payload is real: torch's own loader runs it (falling back to full pickle)
    plain = _python(_LOAD, "plain", str(model))
    assert marker.exists(), plain.stdout + plain.stderr[-1000:]
    marker.unlink()
    guarded = json.loads(_python(_LOAD, "workbench", str(model)).stdout.strip().splitlines()[-1])
    assert not marker.exists() and guarded["loaded"] is False
    assert "weights" in guarded["error"].lower() or "unpickl" in guarded["error"].lower()


def test_archives_with_pickled_objects_are_refused(tmp_path):
    archive = tmp_path / "m.pt2"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("m/archive_format", "pt2")
        z.writestr("m/data/constants/opaque_obj_0", b"\x80\x04N.")
    with pytest.raises(UserError, match="pickled Python objects"):
        refuse_pickled_objects(archive)


UNSAFE = re.compile(
    r"pickle\.loads?\(|joblib\.load|cloudpickle|dill\.load|allow_pickle\s*=\s*True|read_pickle"
    r"|torch\.load\((?![^)]*weights_only\s*=\s*True)"
)


def test_the_source_tree_calls_no_unsafe_loader():
    offenders = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for folder in ("workbench", "exporters", "benchmarks", "scripts", "notebooks")
        for path in sorted((REPO / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if UNSAFE.search(line)
    ]
    assert not offenders, offenders
    assert UNSAFE.search("torch.load(f)") and not UNSAFE.search("torch.load(f, weights_only=True)")


def test_a_hostile_model_name_is_text_in_every_html_output(tmp_path):
    model = unnamed_dims_onnx(tmp_path / HOSTILE)
    home = tmp_path / "ws"
    proc = run_cli(
        [
            "bench",
            str(model),
            *FAST,
            "--batch",
            "1",
            "--shape",
            "image=Bx3x4x4",
            "--output",
            "json",
        ],
        tmp_path,
        home=home,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert row["model"] == HOSTILE and row["status"] == "ok"
    out = tmp_path / "reports"
    proc = run_cli(["report", "--out", str(out)], tmp_path, home=home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pages = [p.read_text() for p in out.glob("*.html")]
    assert len(pages) >= 2  # the run report and the index
    for page in pages:
        # the only scripts are the report's own (the sortable table), none from the name
        own = page.count("<script>// Sortable, filterable tables")
        assert page.lower().count("<script") == own and "<img src=x" not in page
        assert "</script>$" not in page and "<script>$" not in page
    run_page = next(p for p in pages if "All rows" in p)
    assert "&lt;img src=x onerror=&#34;alert(&#39;pwn&#39;)&#34;&gt;&amp;" in run_page
    # a notebook shows result frames through pandas' HTML, which escapes them too

    from workbench import results
    from workbench.analysis import tables

    os.environ["WORKBENCH_HOME"], previous = str(home), os.environ.get("WORKBENCH_HOME")
    try:
        frame = results.load()
    finally:
        if previous is None:
            os.environ.pop("WORKBENCH_HOME")
        else:
            os.environ["WORKBENCH_HOME"] = previous
    for shown in (frame, tables.table(frame)):
        html = shown._repr_html_()
        assert "<script" not in html and "<img" not in html and "&lt;img src=x" in html
