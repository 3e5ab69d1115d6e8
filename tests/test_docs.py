"""The documentation is self-contained: every citation resolves inside the repository.

A citation is a `docs/<name>.md` path, optionally followed by `§N` section numbers, or
`guide §N` (the source guide, summarised in docs/guide.md). Inside docs/ a bare `§N`
means the file itself and `<name>.md` a sibling. A section exists when its file has a
heading that starts with `§N`. Nothing may cite the design page that used to live
outside the repository, and the README's "Where things live" table names every folder
of the package.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
OUTSIDE_DESIGN_PAGE = "DESIGN" + ".md"  # spelled apart so this file does not cite it
# A cited document (docs/x.md, or x.md inside docs/), the word "guide", or a section.
TOKEN = re.compile(
    r"(?P<doc>(?:docs/)?[a-z][a-z0-9_-]*\.md)\b|(?P<guide>\b[Gg]uide\b)|§\s?(?P<sec>\d+(?:\.\d+)*)"
)
HEADING = re.compile(r"^#+\s+§(\d+(?:\.\d+)*)\b")


def tracked_text_files() -> dict[str, str]:
    """Every tracked file that reads as UTF-8, by its path relative to the root."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    files = {}
    for name in filter(None, listing.split("\0")):
        path = ROOT / name
        if not path.is_file():
            continue
        try:
            files[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return files


@cache
def sections(doc: str) -> frozenset[str] | None:
    """The `§N` headings of docs/<doc> (e.g. "method.md"), None when it does not exist."""
    path = DOCS / doc
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(m.group(1) for m in map(HEADING.match, lines) if m)


def broken_citations(name: str, text: str) -> list[str]:
    """`path:line: why` for each citation in `text` that does not resolve."""
    in_docs = name.startswith("docs/")
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        if in_docs and HEADING.match(line):
            continue  # a heading defines a section, it does not cite one
        current = name.removeprefix("docs/") if in_docs else None
        for match in TOKEN.finditer(line):
            where = f"{name}:{number}"
            if match.group("doc"):
                doc = match.group("doc")
                if not doc.startswith("docs/") and not in_docs:
                    current = None  # another folder's file (README.md...): not a docs page
                    continue
                current = doc.removeprefix("docs/")
                if sections(current) is None:
                    problems.append(f"{where}: docs/{current} does not exist")
            elif match.group("guide"):
                current = "guide.md"
            elif current is None:
                problems.append(f"{where}: §{match.group('sec')} names no document")
            elif match.group("sec") not in (sections(current) or ()):
                problems.append(f"{where}: docs/{current} has no heading §{match.group('sec')}")
    return problems


def test_nothing_cites_the_design_page_outside_the_repository() -> None:
    citing = [name for name, text in tracked_text_files().items() if OUTSIDE_DESIGN_PAGE in text]
    assert not citing, f"these files cite {OUTSIDE_DESIGN_PAGE}, which is not in the repository"


def test_every_citation_resolves_to_a_docs_heading() -> None:
    this_file = str(Path(__file__).relative_to(ROOT))  # its examples are broken on purpose
    problems = [
        problem
        for name, text in sorted(tracked_text_files().items())
        if name != this_file
        for problem in broken_citations(name, text)
    ]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_what_it_should() -> None:
    assert broken_citations("x.py", "see docs/method.md §3 and guide §7.2, §5.1") == []
    assert broken_citations("x.py", "see docs/method.md §99") == [
        "x.py:1: docs/method.md has no heading §99"
    ]
    assert broken_citations("x.py", "docs/nowhere.md") == ["x.py:1: docs/nowhere.md does not exist"]
    assert broken_citations("x.py", "as in §6.1") == ["x.py:1: §6.1 names no document"]
    assert broken_citations("docs/claims.md", "([method.md](method.md) §1–§5)") == []


def test_where_things_live_names_every_package_folder() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    folders = sorted(
        p.name
        for p in (ROOT / "workbench").iterdir()
        if p.is_dir() and not p.name.startswith((".", "__"))
    )
    missing = [f"workbench/{name}/" for name in folders if f"workbench/{name}/" not in table]
    assert not missing, f"README's 'Where things live' table leaves out {missing}"
    assert "docs/" in table, "the table should point at docs/"
