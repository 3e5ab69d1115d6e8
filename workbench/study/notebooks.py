"""The notebook runner: papermill on the `workbench` kernel, nbconvert to HTML, an index.

`run_notebooks(profile, only)` executes each notebook of `notebooks/` with
papermill into `<out>/executed/<name>.ipynb`, converts it to a self-contained
`<out>/<name>.html` (plots inline, no scripts fetched from the network), records
its status and headline numbers in `<out>/notebooks.json` and rebuilds
`<out>/index.html`. A notebook that fails is recorded with its error and a link
to the partially executed copy, and the others still run.

Parameters are checked before any kernel starts: every name must be declared in
the notebook's `parameters` cell (as `papermill.inspect_notebook` reads it) and
every value must match the declared type; inside the kernel
`workbench.study.notebook_params.check` repeats the check for direct papermill use.

Order: `00_*` first, then the others by name, `summary` last (it gathers the
headline numbers the others wrote).

`strip(path)` removes outputs, execution counts and run metadata (an
nbstripout equivalent without the dependency; `make strip`).

`new_task_notebook(task, folder)` writes a newly registered task's notebook pair,
`<task>.py` (jupytext percent format, the source a person edits) and `<task>.ipynb`,
from the task template (`templates/task_notebook.py`, filled in by `task_template`;
every task notebook is that template plus its task's own cells).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from workbench.atomic import write_json_atomic
from workbench.env import fingerprint
from workbench.errors import UserError
from workbench.procs import pin_code_root
from workbench.registry import get_task
from workbench.report.index import STATUS_FILE, read_status, write_index
from workbench.study import task_template
from workbench.study.headlines import host_text
from workbench.study.notebook_params import check_values

KERNEL = "workbench"
LAST = ("summary",)
# Pipelines over several tasks' artifacts: run after the task notebooks that export them.
AFTER_TASKS = ("moderation",)
EXECUTED = "executed"
HEADLINES = "headlines"
# Cell metadata and notebook metadata that a run adds and a commit must not carry.
RUN_CELL_METADATA = ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime")
RUN_NOTEBOOK_METADATA = ("papermill", "widgets", "toc-autonumbering")

# nbconvert's lab template with the require.js, MathJax and mermaid loaders removed:
# the reports must open without a network (and without console errors about it).
OFFLINE_TEMPLATE = "workbench_offline.html.j2"
_OFFLINE_TEMPLATE_TEXT = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


@dataclass
class NotebookResult:
    """One notebook's outcome; paths are relative to the reports folder."""

    name: str
    status: str  # ok, failed
    duration_s: float | None = None
    executed: str | None = None
    html: str | None = None
    error: str | None = None
    headline: dict[str, Any] | None = None
    profile: str | None = None
    finished: str | None = None  # UTC, minutes


def discover(folder: Path) -> list[str]:
    """Notebook names in run order."""
    if not folder.is_dir():
        raise UserError(f"no notebooks folder at {folder}")
    names = [p.stem for p in folder.glob("*.ipynb") if not p.name.startswith(".")]
    return sorted(names, key=lambda n: (n in LAST, n in AFTER_TASKS, n))


def select(names: list[str], only: Iterable[str] | None) -> list[str]:
    """`names` restricted to `only` (run order kept); unknown names list the notebooks."""
    if not only:
        return names
    wanted = [o.removesuffix(".ipynb") for o in only]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise UserError(
            f"no notebook named {', '.join(map(repr, unknown))}: the notebooks are "
            f"{', '.join(names)}"
        )
    return [n for n in names if n in wanted]


def declared_parameters(path: Path) -> dict[str, str]:
    """Name -> type string of the notebook's `parameters` cell (papermill's reading)."""
    # lazy: papermill
    import papermill

    info = papermill.inspect_notebook(str(path))
    return {name: spec.get("inferred_type_name") or "None" for name, spec in info.items()}


def validate(path: Path, values: Mapping[str, Any]) -> None:
    """UserError (ParameterError) unless `values` are declared, typed parameters of `path`."""
    spec = declared_parameters(path)
    if not spec:
        raise UserError(f"{path.name} has no cell tagged `parameters` with typed defaults")
    untyped = sorted(n for n, t in spec.items() if t == "None")
    if untyped:
        raise UserError(
            f"{path.name}: parameter(s) {', '.join(untyped)} have no type annotation "
            "(write `name: type = default  # help`)"
        )
    check_values(dict(values), spec, where=path.stem)


def to_html(executed: Path, target: Path) -> Path:
    """A self-contained HTML copy of an executed notebook (images inline, no remote scripts)."""
    # lazy: nbformat, nbconvert
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        embed_images=True,
        extra_loaders=[jinja2.DictLoader({OFFLINE_TEMPLATE: _OFFLINE_TEMPLATE_TEXT})],
    )
    exporter.template_file = OFFLINE_TEMPLATE
    notebook = nbformat.read(executed, as_version=4)
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": executed.stem}})
    target.write_text(body, encoding="utf-8")
    return target


def _error_text(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".strip()


@contextmanager
def _environment(values: Mapping[str, str]):
    """Set environment variables for the kernels started inside, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M")


def _host() -> str:
    return host_text(fingerprint())


def run_notebooks(
    profile: str = "ci",
    only: Iterable[str] | None = None,
    notebooks_dir: Path | str = "notebooks",
    out_dir: Path | str = "reports",
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    kernel_name: str = KERNEL,
    cell_timeout: int | None = None,
    log: Callable[[str], None] = print,
) -> list[NotebookResult]:
    """Run the chosen notebooks (all by default) with `profile`, each with papermill on
    `kernel_name`; `parameters` maps a notebook name to extra parameters for it. Every
    notebook's parameters are validated before the first one starts."""
    # lazy: papermill
    import papermill

    notebooks_dir = Path(notebooks_dir).resolve()
    out_dir = Path(out_dir).resolve()
    names = select(discover(notebooks_dir), only)
    extra = dict(parameters or {})
    stray = sorted(set(extra) - set(names))
    if stray:
        raise UserError(f"parameters given for notebook(s) not run: {', '.join(stray)}")
    plan: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        values = {"profile": profile, **dict(extra.get(name, {}))}
        validate(notebooks_dir / f"{name}.ipynb", values)
        plan.append((name, values))

    executed_dir = out_dir / EXECUTED
    executed_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / HEADLINES).mkdir(parents=True, exist_ok=True)
    status: dict[str, Any] = {
        "profile": profile,
        "started": _now(),
        "host": _host(),
        "notebooks": [],
    }
    # A partial run (--only) keeps the other notebooks' last records, so the index still
    # links every report there is (each row says its profile and when it ran).
    previous = [
        r
        for r in (read_status(out_dir) or {}).get("notebooks", [])
        if r.get("name") not in names and r.get("executed") and (out_dir / r["executed"]).exists()
    ]
    env = {
        "WORKBENCH_REPORTS": str(out_dir),
        # Kernels run in the notebooks folder; keep them on this checkout's workspace.
        "WORKBENCH_HOME": str(Path(os.environ.get("WORKBENCH_HOME", ".workbench")).resolve()),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
    }
    results: list[NotebookResult] = []
    with _environment(env):
        for i, (name, values) in enumerate(plan, 1):
            log(f"[{i}/{len(plan)}] {name} ({profile}) ...")
            result = _run_one(
                papermill, name, values, notebooks_dir, out_dir, kernel_name, cell_timeout
            )
            result.profile = profile
            result.finished = _now()
            results.append(result)
            records = {r["name"]: r for r in previous}
            records.update({r.name: asdict(r) for r in results})
            order = discover(notebooks_dir)
            status["notebooks"] = sorted(
                records.values(),
                key=lambda r: (order.index(r["name"]) if r["name"] in order else len(order),),
            )
            _write_status(out_dir, status)
            write_index(out_dir)
            took = f"{result.duration_s:.0f} s" if result.duration_s is not None else ""
            log(
                f"[{i}/{len(plan)}] {name}: {result.status} {took}"
                + (f": {result.error}" if result.error else "")
            )
    return results


def _run_one(
    papermill: Any,
    name: str,
    values: dict[str, Any],
    notebooks_dir: Path,
    out_dir: Path,
    kernel_name: str,
    cell_timeout: int | None,
) -> NotebookResult:
    source = notebooks_dir / f"{name}.ipynb"
    executed = out_dir / EXECUTED / f"{name}.ipynb"
    html_path = out_dir / f"{name}.html"
    headline_path = out_dir / HEADLINES / f"{name}.json"
    for stale in (executed, html_path, headline_path):
        stale.unlink(missing_ok=True)
    result = NotebookResult(name=name, status="ok")
    started = time.perf_counter()
    pin_code_root()  # the kernel imports this checkout's workbench, not another clone's
    try:
        papermill.execute_notebook(
            str(source),
            str(executed),
            parameters=values,
            kernel_name=kernel_name,
            cwd=str(notebooks_dir),
            progress_bar=False,
            log_output=False,
            execution_timeout=cell_timeout,
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded; the other notebooks still run
        result.status = "failed"
        result.error = _error_text(exc)
    result.duration_s = round(time.perf_counter() - started, 1)
    if executed.exists():
        result.executed = f"{EXECUTED}/{executed.name}"
        try:
            to_html(executed, html_path)
            result.html = html_path.name
        except Exception as exc:  # noqa: BLE001 - a conversion failure fails this notebook
            result.status = "failed"
            result.error = (result.error + "; " if result.error else "") + (
                f"HTML conversion failed: {_error_text(exc)}"
            )
    if headline_path.exists():
        try:
            result.headline = json.loads(headline_path.read_text()).get("values")
        except (OSError, ValueError):
            result.headline = None
    return result


def _write_status(out_dir: Path, status: dict[str, Any]) -> None:
    write_json_atomic(out_dir / STATUS_FILE, status, indent=1)


# ------------------------------------------------------------------ hygiene


def output_problems(path: Path) -> list[str]:
    """What a committed notebook must not carry: outputs, execution counts, run metadata."""
    # lazy: nbformat
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            if cell.get("outputs"):
                problems.append(f"cell {i} has outputs")
            if cell.get("execution_count") is not None:
                problems.append(f"cell {i} has an execution count")
        for key in RUN_CELL_METADATA:
            if key in cell.get("metadata", {}):
                problems.append(f"cell {i} has run metadata {key!r}")
    for key in RUN_NOTEBOOK_METADATA:
        if key in notebook.metadata:
            problems.append(f"notebook metadata has {key!r}")
    return problems


def strip(path: Path) -> bool:
    """Remove outputs, execution counts and run metadata in place; True when it changed."""
    # lazy: nbformat
    import nbformat

    before = path.read_text(encoding="utf-8")
    notebook = nbformat.reads(before, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in RUN_CELL_METADATA:
            cell.metadata.pop(key, None)
    for key in RUN_NOTEBOOK_METADATA:
        notebook.metadata.pop(key, None)
    after = nbformat.writes(notebook) + "\n"
    if after == before:
        return False
    path.write_text(after, encoding="utf-8")
    return True


def strip_all(folder: Path) -> list[Path]:
    """Strip every notebook under `folder`; the ones that changed."""
    return [p for p in sorted(Path(folder).glob("*.ipynb")) if strip(p)]


# ------------------------------------------------------------------ a new task's notebook


def new_task_notebook(task: str, notebooks_dir: Path) -> Path:
    """Write `<notebooks_dir>/<task>.py` from the task template and its paired, stripped
    `<task>.ipynb`; the path of the `.py` (the file to edit). The template is filled in
    from the registered task (`task_template.render`). A UserError for an unknown task,
    and when either file exists already (nothing is overwritten)."""
    # lazy: jupytext, nbformat
    import jupytext
    import nbformat

    get_task(task)  # an unknown task is refused before anything is written
    notebooks_dir = Path(notebooks_dir)
    py, ipynb = notebooks_dir / f"{task}.py", notebooks_dir / f"{task}.ipynb"
    existing = [p.name for p in (py, ipynb) if p.exists()]
    if existing:
        raise UserError(
            f"task {task!r} has a notebook already ({' and '.join(existing)} in "
            f"{notebooks_dir}): edit it, or delete both files to start again from the template"
        )
    text = task_template.render(task)
    notebook = jupytext.reads(text, fmt=task_template.TEXT_FORMAT)
    notebook.metadata.pop("jupytext", None)  # the .ipynb half carries no text-format metadata
    notebook.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(notebook.cells):
        cell.id = f"{task.replace('_', '-')}-{i:02d}"
    nbformat.validate(notebook)
    notebooks_dir.mkdir(parents=True, exist_ok=True)
    ipynb.write_text(nbformat.writes(notebook) + "\n", encoding="utf-8")
    py.write_text(text, encoding="utf-8")  # last: the source of truth is the newer file
    return py
