"""Each mistake a hidden test can name is one record (``autograder.checks.mistakes``) with a mutant that makes it.

Checked here, from the source: every bug id a checks module can raise is listed (a literal at the raise site, a
``bug`` or ``bug_id`` variable given a literal or looping over literal tuples, an f-string whose pattern must match
a listed id), every listed mistake has a mutant, every mutant applies to the reference answers and is graded by
its notebook's zoo, and every zoo or demo mutant expects a listed id or the check's own. The zoo tests grade each
mutant through nbgrader and check that it gets its bug id back.
"""

import ast
import fnmatch

import pytest

from autograder import registry, zoo
from autograder.checks import mistakes
from autograder.checks.mistakes import cell, harness
from autograder.checks.mistakes import lstm_cell as notebook_1
from autograder.demo import PLANTED
from autograder.host.course import ROOT, Course
from autograder.host.submissions import read, reference_answers

CHECKS = ROOT / "autograder" / "checks"
BUG_NAMES = ("bug", "bug_id")
SHARED = {"cell": cell.MISTAKES, "harness": harness.MISTAKES}


def raised_ids(source: str) -> set[str]:
    """The bug ids a checks module's source can raise; an f-string's as a pattern (``output_*``)."""
    found = set()

    def add(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
        elif isinstance(node, ast.JoinedStr):
            found.add("".join(p.value if isinstance(p, ast.Constant) else "*" for p in node.values))

    def positions(target):
        if isinstance(target, ast.Name):
            return [None] if target.id in BUG_NAMES else []
        if isinstance(target, ast.Tuple):
            return [k for k, el in enumerate(target.elts) if isinstance(el, ast.Name) and el.id in BUG_NAMES]
        return []

    def pick(value, k):
        return value if k is None else value.elts[k] if isinstance(value, ast.Tuple) else None

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "bug":
            add(node.value)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for k in positions(target):
                    add(pick(node.value, k))
        elif isinstance(node, ast.For) and isinstance(node.iter, (ast.Tuple, ast.List)):
            for k in positions(node.target):
                for element in node.iter.elts:
                    add(pick(element, k))
    return found


def listed(checks: str, source: str) -> list[str]:
    """The ids a notebook's checks may name: their own mistakes, the shared ones they reach, the harness's."""
    ids = list(registry.mistakes(checks)) + list(harness.MISTAKES) + list(harness.GENERIC)
    if "_cell." in source:
        ids += list(cell.MISTAKES)
    if "name_cell_bug" in source:  # the standard cell's suspects, proven in notebook 1
        ids += [b for b, m in notebook_1.MISTAKES.items() if m.suspect]
    return ids


def unlisted(raised: set[str], ids: list[str]) -> list[str]:
    """The raised ids (or patterns) that no listed id (or family) accounts for."""
    return sorted(r for r in raised
                  if not any(fnmatch.fnmatchcase(i, r) or fnmatch.fnmatchcase(r, i) for i in ids))


def test_the_scan_finds_each_way_a_check_names_a_bug():
    source = '''
def check():
    raise GradingFailure("x", bug="literal")
    hint, bug = "text", "assigned"
    for reading, bug_id, text in (("h", "looped", "t"),):
        pass
    raise GradingFailure("x", bug=f"{name}_pattern")
'''
    assert raised_ids(source) == {"literal", "assigned", "looped", "*_pattern"}
    assert unlisted(raised_ids(source), ["literal", "assigned", "h_n_pattern"]) == ["looped"]
    assert unlisted({"rows_figo"}, ["rows_*"]) == []


@pytest.mark.parametrize("assignment", list(registry.NOTEBOOKS))
def test_every_bug_id_a_check_can_raise_is_a_listed_mistake(assignment):
    checks = registry.NOTEBOOKS[assignment].checks
    source = (CHECKS / f"{checks}.py").read_text()
    assert not unlisted(raised_ids(source), listed(checks, source)), checks
    module = registry.checks_module(assignment)
    for name in ("SUSPECTS", "STACK_SUSPECTS"):  # the suspects' sentences come from the records
        table = getattr(module, name, {})
        for key in (k for d in ([table] if "matrix" not in table else table.values()) for k in d):
            bug = "_".join(key) if isinstance(key, tuple) else key
            assert mistakes.find(registry.mistakes(checks), bug), f"{checks}.{name}: {bug} is not a listed mistake"


def test_the_shared_tests_name_only_shared_mistakes():
    assert not unlisted(raised_ids((CHECKS / "_cell.py").read_text()), list(cell.MISTAKES))
    assert not unlisted(raised_ids((CHECKS / "harness.py").read_text()),
                        list(harness.MISTAKES) + list(harness.GENERIC))


def _tables():
    for assignment, nb in registry.NOTEBOOKS.items():
        if registry.mistakes(nb.checks):
            yield nb.checks, assignment, registry.mistakes(nb.checks)
    for name, table in SHARED.items():
        yield name, "", table


def test_every_listed_mistake_has_a_mutant():
    without = [f"{name}.{bug}" for name, _, table in _tables() for bug, m in table.items()
               if not m.mutants and not m.no_mutant]
    assert not without, f"{len(without)} mistakes without a mutant: {without}"
    excused = [f"{name}.{bug}" for name, _, table in _tables() for bug, m in table.items() if m.no_mutant]
    assert excused == ["cell.init_uninitialised"], excused  # a new excuse is a decision: list it here
    assert not [m for _, _, table in _tables() for m in table.values() if m.no_mutant and m.mutants]


def test_every_mutant_applies_to_the_reference_and_its_zoo_grades_it():
    course = Course()
    answers = {a: reference_answers(read(course.notebook("source", a))) for a in registry.NOTEBOOKS}
    graded = {a: {(m.cell, m.old, m.new) for m in zoo.mutants(a)} for a in registry.NOTEBOOKS}
    for name, assignment, table in _tables():
        for bug, mistake in table.items():
            for m in mistake.mutants:
                where = m.assignment or assignment
                assert where, f"{name}.{bug}: a shared mistake's mutant names its notebook"
                assert not (m.bug and not mistake.matches(m.bug)), f"{name}.{bug}: {m.bug} is not one of it"
                assert "*" not in (m.bug or bug), f"{name}.{bug}: a family's mutant names its member"
                code = answers[where][m.cell]
                assert code.count(m.old) == 1, f"{name}.{bug}: {m.old!r} is not in {where}:{m.cell} once"
                assert (m.cell, m.old, m.new) in graded[where], f"{name}.{bug}: {where}'s zoo does not grade it"


def test_every_zoo_and_demo_mutant_expects_a_listed_mistake_or_the_checks_own_id():
    for assignment, nb in registry.NOTEBOOKS.items():
        module = registry.checks_module(assignment)
        source = (CHECKS / f"{nb.checks}.py").read_text()
        tests = {n for n in dir(module) if getattr(getattr(module, n), "hidden_test", False)}
        mutations = zoo.mutants(assignment) + [PLANTED[assignment]]
        for m in mutations:
            checks, bug = m.bug_id.split(".", 1)
            assert checks == nb.checks, m
            assert bug in tests or not unlisted({bug}, listed(nb.checks, source)), f"{m.name}: {m.bug_id}"


def test_each_notebook_with_mutants_has_a_zoo_test():
    for assignment in registry.NOTEBOOKS:
        if zoo.mutants(assignment):
            assert (ROOT / "tests" / f"test_zoo_{assignment}.py").exists(), assignment
