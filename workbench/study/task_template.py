"""The task notebook template (`templates/task_notebook.py`): filled in for a task, and
checked against each task notebook, so the sections they share cannot drift apart.

`render(task)` fills the template's `{{task}}`, `{{description}}` (the first line of the
task class's docstring) and `{{models}}` from the registered task; `workbench notebooks
new TASK` writes that text. `problems(text, task)` says how a task notebook's `.py` text
departs from it. The rules, cell by cell (type, tags and source):

- every template cell is in the notebook, filled in, and in the template's order;
- the header (the title through the sweep cell) is the notebook's first cells: nothing
  of the task's own goes before its data exists;
- the task's own cells (detection examples, NER spans, retrieval...) go anywhere after;
- three template cells may go on after the template's text with text of the task's own:
  the title (a paragraph on the task), the parameters cell (its extra parameters) and the
  closing "Reading" (a sentence or more). Every other shared cell must be exactly the
  template's.

`update(text, task, before)` carries an edit of the template into a task notebook (the
task's own cells and appended text kept); after editing the template:

    git show HEAD:workbench/study/templates/task_notebook.py > /tmp/before.py
    python -c 'from pathlib import Path; from workbench.study import task_template as t;
    t.update_all(Path("notebooks"), Path("/tmp/before.py").read_text())'
    make notebooks-sync
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import UserError
from workbench.registry import TASKS, get_task

TEMPLATE = Path(__file__).parent / "templates" / "task_notebook.py"
TEXT_FORMAT = "py:percent"  # the .py half of each pair (notebooks/jupytext.toml)
SWEEP_CELL = 'TASK = "'  # how the header's last cell (the sweep) begins


@dataclass(frozen=True)
class Cell:
    """What a notebook and the template must agree on for one cell."""

    kind: str  # "code" or "markdown"
    source: str
    tags: tuple[str, ...]

    def first_line(self) -> str:
        return next((line for line in self.source.splitlines() if line.strip()), "")


def fill(task: str) -> dict[str, str]:
    """The template's placeholders for `task`, from the registered task."""
    spec = get_task(task)
    doc = (type(spec).__doc__ or "").strip()
    return {
        "task": task,
        "description": doc.splitlines()[0] if doc else "",
        "models": ", ".join(f"`{m}`" for m in spec.models),
    }


def render(task: str, template: str | None = None) -> str:
    """The template's text (`template`: another version of it) filled in for `task`
    (a UserError for an unknown task)."""
    values = fill(task)
    description = values["description"]
    text = TEMPLATE.read_text(encoding="utf-8") if template is None else template
    return (
        text.replace("{{task}}", values["task"])
        .replace("{{description}} ", f"{description} " if description else "")
        .replace("{{models}}", values["models"])
    )


def cells(text: str) -> list[Cell]:
    """The cells of a notebook's `.py` text, read with jupytext."""
    import jupytext  # lazy: jupytext, loaded only where notebooks are read

    notebook = jupytext.reads(text, fmt=TEXT_FORMAT)
    return [Cell(c.cell_type, c.source, tuple(c.metadata.get("tags", []))) for c in notebook.cells]


def _extendable(shared: list[Cell]) -> set[int]:
    """The template cells a task may append lines to: title, parameters, closing text."""
    parameters = next(i for i, c in enumerate(shared) if "parameters" in c.tags)
    return {0, parameters, len(shared) - 1}


def _matches(cell: Cell, shared: Cell, extendable: bool) -> bool:
    if (cell.kind, cell.tags) != (shared.kind, shared.tags):
        return False
    if cell.source == shared.source:
        return True
    rest = cell.source.removeprefix(shared.source)
    return extendable and rest != cell.source and rest[:1] in (" ", "\n")


def _closest(shared: Cell, mine: list[Cell], offset: int) -> str:
    """Where the notebook's most similar cell departs from the template's, in words."""
    scored = [
        (difflib.SequenceMatcher(None, shared.source, c.source).ratio(), offset + i, c)
        for i, c in enumerate(mine)
        if c.kind == shared.kind
    ]
    if not scored:
        return "no such cell in the notebook"
    ratio, index, cell = max(scored, key=lambda s: s[0])
    if ratio < 0.5:
        return "no such cell in the notebook"
    if cell == shared:
        return f"it is cell {index}, out of place (the task's own cells go after the header)"
    want, have = shared.source.splitlines(), cell.source.splitlines()
    for n, (a, b) in enumerate(zip(want, have, strict=False)):
        if a != b:
            return f"cell {index} differs at its line {n + 1}: {b!r} where the template has {a!r}"
    if len(want) != len(have):
        return f"cell {index} has {len(have)} lines where the template has {len(want)}"
    return f"cell {index} has tags {list(cell.tags)} where the template has {list(shared.tags)}"


def problems(text: str, task: str, template: str | None = None) -> list[str]:
    """How a task notebook's `.py` text departs from the template (`template`: another
    version of it) filled in for `task` (empty: every shared cell is the template's; see
    the module doc for the rules)."""
    shared = cells(render(task, template))
    mine = cells(text)
    header = next(i for i, c in enumerate(shared) if c.source.startswith(SWEEP_CELL)) + 1
    extendable = _extendable(shared)
    found: list[str] = []
    at = 0  # the notebook's next unmatched cell
    for i, cell in enumerate(shared):
        window = mine[at : at + 1] if i < header else mine[at:]
        hit = next(
            (at + k for k, c in enumerate(window) if _matches(c, cell, i in extendable)), None
        )
        if hit is not None:
            at = hit + 1
            continue
        where = "in place" if i < header else "in order"
        found.append(
            f"{task}: shared {cell.kind} cell {i} ({cell.first_line()!r}) is not the "
            f"template's {where}: {_closest(cell, mine[at:], at)}"
        )
        if i < header:
            at += 1  # the header keeps its places
    return found


# ------------------------------------------------------------------ regenerating


def _positions(shared: list[Cell], mine: list[Cell]) -> list[int]:
    """Where each template cell is in a notebook that follows the template."""
    extendable = _extendable(shared)
    found, at = [], 0
    for i, cell in enumerate(shared):
        at += next(k for k, c in enumerate(mine[at:]) if _matches(c, cell, i in extendable))
        found.append(at)
        at += 1
    return found


def _renamed(before: list[Cell], after: list[Cell]) -> dict[int, int]:
    """Each cell of the template before an edit -> the one that took its place after it
    (a cell the edit removed has none)."""
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    mapping = {}
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            mapping.update(zip(range(i1, i2), range(j1, j2), strict=True))
        elif op == "replace":  # edited cells: each with its most similar successor, in order
            start = j1
            for i in range(i1, i2):
                score, j = max(
                    ((_similarity(before[i], after[j]), j) for j in range(start, j2)),
                    default=(0.0, j2),
                )
                if score >= 0.5:
                    mapping[i], start = j, j + 1
    return mapping


def _similarity(a: Cell, b: Cell) -> float:
    if (a.kind, a.tags) != (b.kind, b.tags):
        return 0.0
    return difflib.SequenceMatcher(None, a.source, b.source).ratio()


def update(text: str, task: str, before: str) -> str:
    """A task notebook's `.py` text after an edit of the template: `before` is the
    template's text the notebook follows (e.g. `git show HEAD:<template>`). The shared
    cells become the edited template's, each with the text the task appended to it where
    the template allows that; the task's own cells stay after the shared cell they
    followed (or the one before it, where the edit removed that cell). Run
    `make notebooks-sync` after writing it, for the `.ipynb` half."""
    import jupytext  # lazy: jupytext, loaded only where notebooks are read

    drift = problems(text, task, before)
    if drift:
        raise UserError(f"{'; '.join(drift)}: bring it in step with the template first")
    old, new = cells(render(task, before)), cells(render(task))
    notebook = jupytext.reads(text, fmt=TEXT_FORMAT)
    mine = cells(text)
    positions = _positions(old, mine)
    renamed = _renamed(old, new)
    own: dict[int, list[Any]] = {}  # new template index -> the task's cells after it
    anchor = 0
    for n, cell in enumerate(notebook.cells):
        if n in positions:
            index = positions.index(n)
            anchor = renamed.get(index, anchor)
        else:
            own.setdefault(anchor, []).append(cell)
    extra = {
        renamed[i]: mine[positions[i]].source[len(old[i].source) :]
        for i in _extendable(old)
        if i in renamed and renamed[i] in _extendable(new)
    }
    notebook.cells = [
        made
        for k, cell in enumerate(new)
        for made in (_new_cell(cell, extra.get(k, "")), *own.get(k, []))
    ]
    return jupytext.writes(notebook, fmt=TEXT_FORMAT)


def _new_cell(cell: Cell, extra: str) -> Any:
    """A notebook cell of the template, with the text the task appends to it."""
    import nbformat  # lazy: nbformat, loaded only where notebooks are written

    make = nbformat.v4.new_markdown_cell if cell.kind == "markdown" else nbformat.v4.new_code_cell
    tags = {"tags": list(cell.tags)} if cell.tags else {}
    return make(cell.source + extra, metadata=tags)


def update_all(notebooks_dir: Path, before: str) -> list[Path]:
    """`update` every registered task's `<task>.py` in `notebooks_dir` after an edit of
    the template (`before`: its text before the edit); the files it changed."""
    changed = []
    for task in TASKS.names():
        path = Path(notebooks_dir) / f"{task}.py"
        text = path.read_text(encoding="utf-8") if path.is_file() else None
        if text is not None and (new := update(text, task, before)) != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed
