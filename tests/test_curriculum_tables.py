"""The grading map of docs/curriculum.md agrees with the code: per notebook, every grading cell of the source
notebook with its points, the hidden test that judges it (autograder/registry.py), the names its oracle is built
from, the zoo's mutants (each listed once, on a cell of its own exercise) and the visible checks that stop them."""

import importlib
import re
from dataclasses import dataclass

import pytest
from test_visible_checks import CASES

from autograder import registry, zoo
from autograder.host.course import ROOT
from autograder.host.report import exercises
from autograder.host.submissions import nbgrader_meta, read

DOC = ROOT / "docs" / "curriculum.md"
SECTION = "## Grading map"
NONE = "—"
TICKED = re.compile(r"`([^`]+)`")


@dataclass
class Row:
    grade_id: str
    points: str
    test: str
    oracle: str
    mutants: list
    visible: dict  # visible check cell -> the mutants of this row it stops first ("all": every one)


def _ticked(text: str) -> list[str]:
    return TICKED.findall(text)


def _visible(text: str, mutants: list[str]) -> dict:
    if text.strip() == NONE:
        return {}
    found = {}
    for part in text.split(";"):
        check, _, stopped = part.partition(":")
        (name,) = _ticked(check)
        found[name] = list(mutants) if stopped.strip() == "all" else _ticked(stopped)
    return found


def _tables() -> dict[str, tuple[str, list[Row]]]:
    """assignment -> (its heading line, its rows), from the grading map."""
    text = DOC.read_text()
    assert SECTION in text, f"{DOC} has no '{SECTION}' section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    tables = {}
    for block in section.split("\n### ")[1:]:
        heading, *lines = block.splitlines()
        (assignment, *_) = _ticked(heading)
        rows = []
        for line in lines:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.startswith("|") or cells[0] in ("grade_id", "") or set(cells[0]) <= set("-: "):
                continue
            assert len(cells) == 6, f"{assignment}: a row needs six columns: {line}"
            (grade_id,) = _ticked(cells[0])
            mutants = _ticked(cells[4])
            rows.append(Row(grade_id, cells[1], cells[2], cells[3], mutants, _visible(cells[5], mutants)))
        tables[assignment] = (heading, rows)
    return tables


TABLES = _tables()


def _grading_cells(assignment: str) -> list[tuple[str, float, bool]]:
    """(grade_id, points, graded by hand) of every grading cell of the source notebook, in order."""
    nb = read(ROOT / "source" / assignment / f"{assignment}.ipynb")
    return [(m["grade_id"], float(m.get("points", 0)), bool(m.get("solution")))
            for m in map(nbgrader_meta, nb.cells) if m.get("grade")]


def _resolve(dotted: str):
    """The object a dotted name of the table names: under autograder.checks, autograder or torch."""
    parts = dotted.split(".")
    roots = ["autograder.checks."] if parts[0] not in ("autograder", "torch") else [""]
    for prefix in roots:
        for k in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(prefix + ".".join(parts[:k]))
            except ImportError:
                continue
            for attr in parts[k:]:
                obj = getattr(obj, attr)
            return obj
    raise ImportError(dotted)


def test_every_notebook_has_a_table():
    assert list(TABLES) == list(registry.NOTEBOOKS)


@pytest.mark.parametrize("assignment", list(registry.NOTEBOOKS))
def test_the_heading_names_the_registry_modules(assignment):
    heading, _ = TABLES[assignment]
    nb = registry.NOTEBOOKS[assignment]
    assert f"`autograder/checks/{nb.checks}.py`" in heading, heading
    assert (f"`autograder/zoo/{nb.zoo}.py`" in heading) if nb.zoo else "no mutants" in heading, heading


@pytest.mark.parametrize("assignment", list(registry.NOTEBOOKS))
def test_every_grading_cell_is_listed_with_its_points_in_order(assignment):
    _, rows = TABLES[assignment]
    cells = _grading_cells(assignment)
    assert [r.grade_id for r in rows] == [g for g, _, _ in cells]
    assert [float(r.points.removesuffix(" (bonus)")) for r in rows] == [p for _, p, _ in cells]


@pytest.mark.parametrize("assignment", list(registry.NOTEBOOKS))
def test_every_hidden_test_named_is_the_one_that_judges_the_cell(assignment):
    _, rows = TABLES[assignment]
    by_hand = {g for g, _, manual in _grading_cells(assignment) if manual}
    module = registry.NOTEBOOKS[assignment].checks
    for row in rows:
        if row.grade_id in by_hand:
            assert row.test == "graded by hand" and registry.hidden_test(assignment, row.grade_id) is None
            continue
        (name,) = _ticked(row.test)
        assert name == f"{module}.{row.grade_id}", row
        assert registry.hidden_test(assignment, row.grade_id) is _resolve(name), row


@pytest.mark.parametrize("assignment", list(registry.NOTEBOOKS))
def test_every_name_in_an_oracle_exists(assignment):
    _, rows = TABLES[assignment]
    for row in rows:
        assert row.oracle and row.oracle != NONE, row
        for name in _ticked(row.oracle):
            if re.fullmatch(r"[A-Za-z_][\w.]*", name) and "." in name:
                _resolve(name)


@pytest.mark.parametrize("assignment", list(registry.NOTEBOOKS))
def test_every_mutant_is_listed_once_on_a_cell_of_its_exercise(assignment):
    _, rows = TABLES[assignment]
    mutants = {m.name: m for m in zoo.mutants(assignment)}
    listed = [name for row in rows for name in row.mutants]
    assert sorted(listed) == sorted(mutants), "listed twice or not a mutant of the zoo: " + \
        str(sorted(set(listed) ^ set(mutants)) or [n for n in listed if listed.count(n) > 1])
    owner = exercises(read(ROOT / "source" / assignment / f"{assignment}.ipynb"))
    module = registry.NOTEBOOKS[assignment].checks
    for row in rows:
        for name in row.mutants:
            assert owner[row.grade_id] == mutants[name].cell, f"{name} is listed under another exercise's cell"
    for mutant in mutants.values():  # a bug id that is a cell's own names the cell
        cell = mutant.bug_id.removeprefix(f"{module}.")
        if cell in owner:
            assert mutant.name in next(r.mutants for r in rows if r.grade_id == cell), mutant


@pytest.mark.parametrize("assignment", list(registry.NOTEBOOKS))
def test_every_visible_check_named_stops_a_mutant_of_its_row(assignment):
    _, rows = TABLES[assignment]
    nb = read(ROOT / "source" / assignment / f"{assignment}.ipynb")
    checks = {nbgrader_meta(c).get("grade_id") for c in nb.cells
              if c.cell_type == "code" and nbgrader_meta(c).get("locked") and c.source.startswith("# Visible check")}
    for row in rows:
        for check, stopped in row.visible.items():
            assert check in checks, f"{check} is not a visible check cell of {assignment}"
            assert stopped and set(stopped) <= set(row.mutants), row


@pytest.mark.parametrize("assignment", list(CASES))
def test_the_visible_check_zoo_agrees(assignment):
    """Each zoo mutant of tests/test_visible_checks.py is listed as stopped by the check cell it expects."""
    _, rows = TABLES[assignment]
    stopped_by = {m: check for row in rows for check, ms in row.visible.items() for m in ms}
    names = {m.name for m in zoo.mutants(assignment)}
    for mutation, check, _ in CASES[assignment]:
        if mutation.name in names:
            assert stopped_by.get(mutation.name) == check, mutation.name
