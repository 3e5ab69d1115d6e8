"""The notebooks and their runner: hygiene, one notebook per task, typed parameters,
fail-fast parameter checks (in the runner and inside the kernel), and a runner that keeps
going when one notebook fails and lists it in reports/index.html."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest

from workbench.study import notebook_params, notebooks
from workbench.cli import main
from workbench.errors import UserError
from workbench.tasks.base import task_names

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
REQUIRED = ["00_quickstart", "quantization_study", "cpu_vs_gpu", "seed_claims", "summary"]
ALL = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def _param_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged `parameters`"
    return cells[0]


# ---------------------------------------------------------------- static checks


@pytest.mark.parametrize("name", ALL)
def test_committed_notebook_has_no_outputs(name: str) -> None:
    problems = notebooks.output_problems(NOTEBOOKS / f"{name}.ipynb")
    assert not problems, f"{name}.ipynb: {'; '.join(problems)} (run `make strip`)"


@pytest.mark.parametrize("task", task_names())
def test_every_task_has_a_notebook(task: str) -> None:
    assert (NOTEBOOKS / f"{task}.ipynb").is_file(), (
        f"task {task!r} has no notebooks/{task}.ipynb: `python scripts/make_notebooks.py {task}` "
        "writes one from the task template"
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


# ---------------------------------------------------------------- parameter checks


def test_check_values_names_parameter_and_type() -> None:
    spec = {"profile": "str", "batch_sizes": "list[int]", "tolerance": "float"}
    notebook_params.check_values({"profile": "full", "batch_sizes": [1, 2], "tolerance": 1}, spec)
    with pytest.raises(UserError, match=r"'batch_sizes'.* must be list\[int\], got int 8"):
        notebook_params.check_values({"batch_sizes": 8}, spec)
    with pytest.raises(UserError, match=r"unknown notebook parameter 'batch'.*batch_sizes"):
        notebook_params.check_values({"batch": [1]}, spec)
    with pytest.raises(UserError, match=r"'profile'.*one of 'ci', 'full'"):
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
