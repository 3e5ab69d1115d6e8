"""The notebooks and their runner: hygiene, one notebook per task, typed parameters,
fail-fast parameter checks (in the runner and inside the kernel), and a runner that keeps
going when one notebook fails and lists it in reports/index.html."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest

from workbench.cli import main
from workbench.errors import UserError
from workbench.registry import TASKS, get_task
from workbench.study import notebook_params, notebooks, task_template

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
REQUIRED = ["00_quickstart", "quantization_study", "cpu_vs_gpu", "seed_claims", "summary"]
ALL = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
PAIRS = sorted(set(ALL) | {p.stem for p in NOTEBOOKS.glob("*.py")})
SYNC = "make notebooks-sync"  # jupytext --sync (the newer file of each pair wins), then strip


def _param_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged `parameters`"
    return cells[0]


def _cells(path: Path) -> list[tuple[str, str, list[str]]]:
    """What a pair must agree on, read with jupytext: each cell's type, source and tags."""
    notebook = jupytext.read(path)
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in notebook.cells]


def _pair_problems(folder: Path, name: str) -> list[str]:
    """How `<name>.py` and `<name>.ipynb` in `folder` disagree (empty: in step)."""
    py, ipynb = folder / f"{name}.py", folder / f"{name}.ipynb"
    missing = [p.name for p in (py, ipynb) if not p.is_file()]
    if missing:
        return [f"{name}: no {' and no '.join(missing)} beside the other half of the pair"]
    a, b = _cells(py), _cells(ipynb)
    problems = []
    if a != b:
        same = [x == y for x, y in zip(a, b, strict=False)]
        i = same.index(False) if False in same else len(same)
        first = f"{a[i][0]} cell {i}: {a[i][1][:60]!r}" if i < len(a) else f"cell {i}"
        problems.append(
            f"{name}.py and {name}.ipynb differ ({len(a)} and {len(b)} cells; first at {first})"
        )
    kernels = [jupytext.read(p).metadata.get("kernelspec") for p in (py, ipynb)]
    if kernels[0] != kernels[1]:
        problems.append(f"{name}: kernelspec {kernels[0]} in .py, {kernels[1]} in .ipynb")
    return problems


# ---------------------------------------------------------------- static checks


@pytest.mark.parametrize("name", ALL)
def test_committed_notebook_has_no_outputs(name: str) -> None:
    problems = notebooks.output_problems(NOTEBOOKS / f"{name}.ipynb")
    assert not problems, f"{name}.ipynb: {'; '.join(problems)} (run `make strip`)"


@pytest.mark.parametrize("task", TASKS.names())
def test_every_task_has_a_notebook(task: str) -> None:
    hint = "`workbench notebooks new TASK` (notebooks.new_task_notebook) writes the pair"
    assert (NOTEBOOKS / f"{task}.ipynb").is_file(), (
        f"task {task!r} has no notebooks/{task}.ipynb: {hint} from the task template"
    )
    assert (NOTEBOOKS / f"{task}.py").is_file(), (
        f"task {task!r} has no notebooks/{task}.py: {hint}, `{SYNC}` pairs an existing .ipynb"
    )


def test_the_cross_task_notebooks_exist() -> None:
    missing = [n for n in REQUIRED if not (NOTEBOOKS / f"{n}.ipynb").is_file()]
    assert not missing


@pytest.mark.parametrize("name", ALL)
def test_parameters_cell_is_tagged_typed_and_commented(name: str) -> None:
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    _param_cell(nb)
    info = papermill.inspect_notebook(str(path))
    assert "profile" in info and info["profile"]["default"] == '"ci"'
    for param, spec in info.items():
        assert spec["inferred_type_name"] not in (None, "None"), f"{param} has no type"
        notebook_params.parse_type(spec["inferred_type_name"])  # a type the checks understand
        assert spec["help"], f"{name}: parameter {param} has no comment"
    # begin() before the parameters cell, check() right after it
    codes = [c for c in nb.cells if c.cell_type == "code"]
    index = next(i for i, c in enumerate(codes) if "parameters" in c.metadata.get("tags", []))
    assert any("notebook_params.begin(globals())" in c.source for c in codes[:index])
    assert "notebook_params.check(globals())" in codes[index + 1].source


def test_strip_removes_outputs_and_is_idempotent(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS / "summary.ipynb", as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    nb.cells[1].execution_count = 3
    nb.cells[1].metadata["execution"] = {"x": 1}
    nb.metadata["papermill"] = {"parameters": {}}
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)
    assert notebooks.output_problems(path)
    assert notebooks.strip(path) is True
    assert notebooks.output_problems(path) == []
    assert notebooks.strip(path) is False
    assert nbformat.read(path, as_version=4).cells[2].metadata["tags"] == ["parameters"]


# ---------------------------------------------------------------- the .py / .ipynb pairs


@pytest.mark.parametrize("name", PAIRS)
def test_notebook_and_its_script_agree(name: str) -> None:
    """notebooks/<name>.py (what a person edits) and <name>.ipynb (what papermill runs)
    hold the same cells: types, sources and tags."""
    problems = _pair_problems(NOTEBOOKS, name)
    assert not problems, f"{'; '.join(problems)}: run `{SYNC}`"


def test_the_pairing_is_declared_for_the_folder() -> None:
    """One notebooks/jupytext.toml pairs every notebook there (JupyterLab and the CLI)."""
    found = jupytext.config.find_jupytext_configuration_file(str(NOTEBOOKS))
    assert Path(found) == NOTEBOOKS / "jupytext.toml"
    config = jupytext.config.load_jupytext_configuration_file(found)
    for name in PAIRS:
        assert config.default_formats(str(NOTEBOOKS / f"{name}.ipynb")) == "ipynb,py:percent"


def _copy_pair(name: str, folder: Path) -> tuple[Path, Path]:
    """`name`'s pair and the folder's jupytext.toml in `folder`, the .py the newer file."""
    for file in ("jupytext.toml", f"{name}.ipynb", f"{name}.py"):
        shutil.copy(NOTEBOOKS / file, folder / file)
    return folder / f"{name}.py", folder / f"{name}.ipynb"


def test_a_drifted_pair_fails_and_notebooks_sync_repairs_it(tmp_path: Path) -> None:
    py, ipynb = _copy_pair("summary", tmp_path)
    ids = [c.id for c in nbformat.read(ipynb, as_version=4).cells]
    text = py.read_text()
    edited = text.replace("# ## Reading\n", "# ## How to read it\n").replace(
        "# %%\nimport json\n", '# %% tags=["raises-exception"]\nimport json\n'
    )
    assert edited.count("\n") == text.count("\n") and edited != text
    py.write_text(edited)  # an edit in an editor, the .ipynb not synced
    problems = _pair_problems(tmp_path, "summary")
    assert problems and "summary.py and summary.ipynb differ" in problems[0]
    # what `make notebooks-sync` runs
    subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(py)], check=True)
    notebooks.strip_all(tmp_path)
    assert _pair_problems(tmp_path, "summary") == []
    synced = nbformat.read(ipynb, as_version=4)
    assert "## How to read it" in synced.cells[-1].source
    assert synced.cells[4].metadata["tags"] == ["raises-exception"]
    assert [c.id for c in synced.cells] == ids  # unchanged cells keep their ids
    assert notebooks.output_problems(ipynb) == []


def test_a_jupyterlab_edit_is_kept_in_the_script(tmp_path: Path) -> None:
    """JupyterLab saves through jupytext's contents manager (its server extension wraps
    the default async one), which writes both files of the pair."""
    from jupytext import AsyncTextFileContentsManager

    py, ipynb = _copy_pair("summary", tmp_path)
    manager = AsyncTextFileContentsManager(root_dir=str(tmp_path))
    model = asyncio.run(manager.get("summary.ipynb"))
    notebook = model["content"]
    _param_cell(notebook).source += "\nextra: int = 3  # added in JupyterLab"
    notebook.cells[0].source += "\n\nEdited in JupyterLab."
    asyncio.run(manager.save({"type": "notebook", "content": notebook}, "summary.ipynb"))

    text = py.read_text()
    assert "extra: int = 3  # added in JupyterLab" in text
    assert "# Edited in JupyterLab." in text
    assert '# %% tags=["parameters"]' in text  # papermill's tag survives the round trip
    assert _pair_problems(tmp_path, "summary") == []
    assert "extra" in papermill.inspect_notebook(str(ipynb))
    assert "extra" in _param_cell(jupytext.read(py)).source  # reopened from the .py
    # reopening the pair in JupyterLab shows the edit
    again = asyncio.run(manager.get("summary.ipynb"))["content"]
    assert "Edited in JupyterLab." in again.cells[0].source


def test_new_task_notebook_writes_the_pair_from_the_template(tmp_path: Path) -> None:
    py = notebooks.new_task_notebook("tabular", tmp_path)
    assert py == tmp_path / "tabular.py" and (tmp_path / "tabular.ipynb").is_file()
    assert _cells(py) == _cells(NOTEBOOKS / "tabular.py"), (
        "the task template (workbench/study/templates/task_notebook.py) no longer matches "
        "notebooks/tabular.py: carry a change of the task notebooks' common structure to both"
    )
    assert _pair_problems(tmp_path, "tabular") == []
    assert notebooks.output_problems(tmp_path / "tabular.ipynb") == []
    written = nbformat.read(tmp_path / "tabular.ipynb", as_version=4)
    assert written.metadata["kernelspec"]["name"] == notebooks.KERNEL
    assert [c.id for c in written.cells][:2] == ["tabular-00", "tabular-01"]
    assert "profile" in papermill.inspect_notebook(str(tmp_path / "tabular.ipynb"))

    # another task: its name, description and models fill the template
    notebooks.new_task_notebook("object_detection", tmp_path)
    made = (tmp_path / "object_detection.py").read_text()
    assert "# # Task `object_detection`:" in made and 'TASK = "object_detection"' in made
    assert "{{" not in made and "tabular" not in made
    task = get_task("object_detection")
    assert all(f"`{m}`" in made for m in task.models)
    assert _pair_problems(tmp_path, "object_detection") == []

    # nothing is overwritten; an unknown task is refused before anything is written
    py.write_text(py.read_text() + "\n# %%\nprint('mine')\n")
    kept = py.read_text()
    with pytest.raises(UserError, match=r"task 'tabular' has a notebook already"):
        notebooks.new_task_notebook("tabular", tmp_path)
    assert py.read_text() == kept
    (tmp_path / "object_detection.py").unlink()  # half a pair is refused too
    with pytest.raises(UserError, match=r"object_detection.ipynb"):
        notebooks.new_task_notebook("object_detection", tmp_path)
    with pytest.raises(UserError, match=r"unknown task 'nope'"):
        notebooks.new_task_notebook("nope", tmp_path / "new")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("task", TASKS.names())
def test_task_notebook_shares_the_template(task: str) -> None:
    """Every task notebook is the task template filled in for its task, plus cells of its
    own: the sections they share cannot drift apart (task_template.problems says how)."""
    problems = task_template.problems((NOTEBOOKS / f"{task}.py").read_text(), task)
    assert not problems, (
        f"{'; '.join(problems)}: carry a change of the shared sections to "
        "workbench/study/templates/task_notebook.py and every task notebook"
    )


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_a_drifted_task_notebook_fails_the_template_check() -> None:
    """A copy of a task notebook with one shared line changed, a shared cell dropped, or a
    cell of its own before the sweep is reported; its own cells and appended parameters
    are not."""
    text = (NOTEBOOKS / "ner.py").read_text()
    assert task_template.problems(text, "ner") == []

    drifted = _replace_once(text, "plots.memory(frame, caption)\n", "plots.memory(frame)\n")
    (problem,) = task_template.problems(drifted, "ner")
    assert "shared code cell" in problem and "'plots.memory(frame, caption)'" in problem
    assert "'plots.memory(frame)' where the template has 'plots.memory(frame, caption)'" in problem

    heading = "# ## What to ship\n"
    renamed = _replace_once(text, heading, "# ## What we ship\n")
    (problem,) = task_template.problems(renamed, "ner")
    assert "shared markdown cell" in problem and "What to ship" in problem

    dropped = _replace_once(
        text,
        "# %%\n# The run report's heatmap: format x precision against FP32, geometric mean "
        "over batch sizes.\nplots.speedup_heatmap(speedups, caption)\n\n",
        "",
    )
    (problem,) = task_template.problems(dropped, "ner")
    assert "The run report's heatmap" in problem

    early = _replace_once(text, "# %%\nTASK = ", "# %%\nprint('before the sweep')\n\n# %%\nTASK = ")
    problems = task_template.problems(early, "ner")
    assert problems and "in place" in problems[0]

    own = text + "\n# %%\nprint('a section of its own')\n"
    more = _replace_once(
        own,
        "max_accuracy_drop: float = 1.0  # INT8 parity: points of accuracy (F1, mAP, AUC) below "
        "the source\n",
        "max_accuracy_drop: float = 1.0  # INT8 parity: points of accuracy (F1, mAP, AUC) below "
        "the source\n"
        "extra: int = 1  # a parameter of the task's own\n",
    )
    assert task_template.problems(more, "ner") == []


def test_a_template_edit_reaches_every_task_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """task_template.update carries an edit of the template (a changed line, a removed
    section, a new cell) into each task notebook, keeping the task's own cells and the text
    it appends to the title, the parameters and "Reading"."""
    before = task_template.TEMPLATE.read_text()
    texts = {task: (NOTEBOOKS / f"{task}.py").read_text() for task in TASKS.names()}
    for task, text in texts.items():
        assert task_template.update(text, task, before) == text  # nothing to carry

    throughput = "# %% [markdown]\n# ## Throughput against batch size\n\n# %%\n"
    edited = before.replace("# ## Memory\n", "# ## Memory of the measuring process\n")
    edited = edited.replace(throughput + "plots.throughput_vs_batch(frame, caption)\n\n", "")
    edited = edited.replace(
        "# %% [markdown]\n# ## Reading\n", "# %%\nP\n\n# %% [markdown]\n# ## Reading\n"
    )
    edited = edited.replace("next to the file size.", "next to the size of the file.")
    assert edited.count("\n") == before.count("\n") - 3
    template = tmp_path / "task_notebook.py"
    template.write_text(edited)
    monkeypatch.setattr(task_template, "TEMPLATE", template)

    for task, text in texts.items():
        updated = task_template.update(text, task, before)
        assert task_template.problems(updated, task) == [], task
        shared = set(task_template.cells(task_template.render(task, before)))
        own = [c for c in task_template.cells(text) if c not in shared]
        now = set(task_template.cells(updated))
        # a shared cell with the task's text appended (title, parameters, Reading) changes
        extended = [c for c in own if any(c.source.startswith(s.source) for s in shared)]
        assert [c for c in own if c in now or c in extended] == own, task
        sources = "\n".join(c.source for c in now)
        for cell in extended:
            base = next(s for s in shared if cell.source.startswith(s.source))
            assert cell.source[len(base.source) :] in sources, task  # e.g. `seq_lens`
        assert "plots.throughput_vs_batch" not in updated
    ctr = task_template.update(texts["ctr"], "ctr", before)
    assert "next to the size of the file. For ranking, the cost of a request" in ctr
    assert "ranking_candidates: list[int] = []" in ctr
    assert ctr.index("ctr_study.bad_inputs()") < ctr.index("# %%\nP\n") < ctr.index("## Reading")

    drifted = texts["ner"].replace("plots.memory(frame, caption)\n", "plots.memory(frame)\n")
    with pytest.raises(UserError, match=r"ner: shared code cell .*in step with the template first"):
        task_template.update(drifted, "ner", before)


# ---------------------------------------------------------------- parameter checks


def test_check_values_names_parameter_and_type() -> None:
    spec = {"profile": "str", "batch_sizes": "list[int]", "tolerance": "float"}
    notebook_params.check_values({"profile": "full", "batch_sizes": [1, 2], "tolerance": 1}, spec)
    with pytest.raises(UserError, match=r"'batch_sizes'.* must be list\[int\], got int 8"):
        notebook_params.check_values({"batch_sizes": 8}, spec)
    with pytest.raises(UserError, match=r"unknown notebook parameter 'batch'.*batch_sizes"):
        notebook_params.check_values({"batch": [1]}, spec)
    with pytest.raises(UserError, match=r"'profile'.*one of 'ci', 'quick', 'full'"):
        notebook_params.check_values({"profile": "fast"}, spec)
    with pytest.raises(UserError, match=r"must be list\[int\]"):
        notebook_params.check_values({"batch_sizes": [1, True]}, spec)


def test_check_in_a_namespace() -> None:
    ns: dict = {"notebook_params": notebook_params, "_i1": ""}
    notebook_params.begin(ns)
    exec("profile: str = 'ci'\nsizes: list[int] = []", ns)  # the parameters cell
    exec("sizes = [1, 8]\nsizez = [2]", ns)  # papermill's injected cell, with a typo
    with pytest.raises(
        UserError, match=r"unknown notebook parameter 'sizez'.*sizes \(list\[int\]\)"
    ):
        notebook_params.check(ns)
    del ns["sizez"]
    assert notebook_params.check(ns).sizes == [1, 8]


def test_check_in_ipython_flags_only_injected_names() -> None:
    """With IPython's input history, leftovers of an earlier interactive run (`frame`)
    are not parameters; a name from papermill's injected cell is."""
    ns: dict = {"In": ["", "from workbench.study import notebook_params"], "frame": object()}
    notebook_params.begin(ns)
    ns["In"].append("profile: str = 'ci'")
    exec(ns["In"][-1], ns)
    ns["In"].append("# Parameters\nprofile = 'full'\nbatchsize = 4\n")
    exec(ns["In"][-1], ns)
    ns["late"] = 1  # defined by a later cell in an earlier run
    with pytest.raises(UserError, match=r"unknown notebook parameter 'batchsize'"):
        notebook_params.check(ns)
    ns["In"][-1] = "# Parameters\nprofile = 'full'\n"
    assert notebook_params.check(ns).profile == "full"


def test_runner_rejects_bad_parameters_before_running(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown notebook parameter 'batch'.*of tabular"):
        notebooks.run_notebooks(
            only=["tabular"],
            notebooks_dir=NOTEBOOKS,
            out_dir=tmp_path,
            parameters={"tabular": {"batch": [1]}},
        )
    with pytest.raises(UserError, match=r"'batch_sizes' of tabular must be list\[int\], got int"):
        notebooks.run_notebooks(
            only=["tabular"],
            notebooks_dir=NOTEBOOKS,
            out_dir=tmp_path,
            parameters={"tabular": {"batch_sizes": 8}},
        )
    assert not (tmp_path / "executed" / "tabular.ipynb").exists()


def test_cli_only_with_unknown_name_lists_notebooks(capsys: pytest.CaptureFixture) -> None:
    assert main(["notebooks", "run", "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no notebook named 'nope'" in err and "00_quickstart" in err and "tabular" in err
    assert main(["notebooks", "run", "--profile", "huge"]) == 2


@pytest.mark.notebooks
def test_kernel_fails_fast_on_unknown_and_mistyped_parameters(tmp_path: Path) -> None:
    """Direct papermill use (no runner): the check cell right after the injected one stops
    the notebook, naming the parameter and the expected type."""
    source = NOTEBOOKS / "summary.ipynb"
    for params, expected in (
        ({"includ": ["x"]}, r"unknown notebook parameter 'includ'.*include \(list\[str\]\)"),
        ({"include": "tabular"}, r"'include' must be list\[str\], got str 'tabular'"),
    ):
        out = tmp_path / "out.ipynb"
        with pytest.raises(papermill.PapermillExecutionError) as info:
            papermill.execute_notebook(
                str(source),
                str(out),
                parameters=params,
                kernel_name="workbench",
                progress_bar=False,
                cwd=str(tmp_path),
            )
        assert info.value.ename == "ParameterError"
        assert re.search(expected, info.value.evalue), info.value.evalue
        executed = nbformat.read(out, as_version=4)
        ran = [c for c in executed.cells if c.cell_type == "code" and c.execution_count]
        assert "notebook_params.check" in ran[-1].source  # nothing after the check ran


# ---------------------------------------------------------------- the runner


def _tiny(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile: str = "ci"  # ci or full')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from workbench.study import notebook_params\nnotebook_params.begin(globals())"
        ),
        params,
        nbformat.v4.new_code_cell("P = notebook_params.check(globals())"),
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {"name": "workbench", "display_name": "w", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.notebooks
def test_runner_keeps_going_and_lists_the_failure(tmp_path: Path) -> None:
    books = tmp_path / "nb"
    books.mkdir()
    _tiny(books / "a_fails.ipynb", "print('before')\nraise RuntimeError('boom <b>&')")
    _tiny(
        books / "b_works.ipynb",
        "from workbench import study\nprint(P.profile)\n"
        "study.record_headline('b_works', {'answer': '<42>'}, P.profile)",
    )
    out = tmp_path / "reports"
    done = notebooks.run_notebooks(
        profile="ci", notebooks_dir=books, out_dir=out, log=lambda _: None
    )
    by_name = {r.name: r for r in done}
    assert by_name["a_fails"].status == "failed"
    assert "RuntimeError: boom <b>&" in by_name["a_fails"].error
    assert by_name["b_works"].status == "ok"
    assert by_name["b_works"].headline == {"answer": "<42>"}
    # the partially executed copy is kept, with the cell that ran
    partial = nbformat.read(out / "executed" / "a_fails.ipynb", as_version=4)
    assert any("before" in o.get("text", "") for c in partial.cells for o in c.get("outputs", []))
    index = (out / "index.html").read_text()
    assert "Failed notebooks (1)" in index
    assert 'href="executed/a_fails.ipynb"' in index and 'href="a_fails.html"' in index
    assert "boom &lt;b&gt;&amp;" in index and "boom <b>&" not in index  # errors escaped
    assert "&lt;42&gt;" in index  # headline values escaped
    assert 'href="b_works.html"' in index
    html = (out / "b_works.html").read_text()
    assert "cdnjs" not in html and "require.min.js" not in html  # opens without a network
    status = json.loads((out / "notebooks.json").read_text())
    assert [n["status"] for n in status["notebooks"]] == ["failed", "ok"]
    # the CLI says which failed and exits 1; a partial run keeps the other notebook's record
    args = ["notebooks", "run", "--notebooks", str(books), "--out", str(out), "--only", "a_fails"]
    assert main(args) == 1
    status = json.loads((out / "notebooks.json").read_text())
    assert [n["name"] for n in status["notebooks"]] == ["a_fails", "b_works"]
    assert 'href="b_works.html"' in (out / "index.html").read_text()


def test_run_order_puts_quickstart_first_and_summary_last() -> None:
    order = notebooks.discover(NOTEBOOKS)
    assert order[0] == "00_quickstart" and order[-1] == "summary"
    assert notebooks.select(order, ["summary", "tabular.ipynb"]) == ["tabular", "summary"]
