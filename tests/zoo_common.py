"""Shared by the per-notebook zoo tests (one file each, so pytest-xdist grades them in parallel): each file
subclasses ``ZooTests`` with its assignment."""

import pytest

from autograder import zoo

NAMED_TARGET = 0.8


def check_mutants_caught(outcomes):
    mutants = [o for o in outcomes if o.kind == "mutant"]
    assert mutants, "this notebook has no mutants"
    missed = [f"{o.name}: lost {o.lost}" for o in mutants if not o.ok]
    assert not missed, "mutants not caught on their own exercise:\n" + "\n".join(missed)


def check_styles_full_marks(outcomes):
    styles = [o for o in outcomes if o.kind == "style"]
    assert styles, "this notebook has no correct-style answers"
    failed = [f"{o.name}: lost {o.lost}: {o.message}" for o in styles if not o.ok]
    assert not failed, "correct answers that lost points:\n" + "\n".join(failed)


def named_rate(outcomes):
    mutants = [o for o in outcomes if o.kind == "mutant"]
    return sum(o.named for o in mutants) / len(mutants)


def check_bug_ids(outcomes):
    """Each mutant's first failing cell on its exercise carries the bug id the zoo expects (from the grading
    log, as the class report reads it); a correct style has none."""
    mutants = [o for o in outcomes if o.kind == "mutant"]
    assert all(o.expected_bug for o in mutants), [o.name for o in mutants if not o.expected_bug]
    wrong = [f"{o.name}: {o.bug or '(none)'}, expected {o.expected_bug}" for o in mutants if o.bug != o.expected_bug]
    assert not wrong, "mutants with another bug id:\n" + "\n".join(wrong)
    assert not [o.name for o in outcomes if o.kind == "style" and o.bug]


class ZooTests:
    """A notebook's bug zoo and correct styles, graded once through real nbgrader."""

    A = ""

    @pytest.fixture(scope="class")
    @classmethod
    def outcomes(cls, tmp_path_factory, released):
        return zoo.run(released(tmp_path_factory.mktemp(f"zoo-{cls.A}"), cls.A), cls.A)

    def test_every_mutant_loses_points_on_its_exercise(self, outcomes):
        check_mutants_caught(outcomes)

    def test_every_correct_style_gets_full_marks(self, outcomes):
        check_styles_full_marks(outcomes)

    def test_messages_name_the_bug(self, outcomes):
        print(zoo.table(outcomes))
        assert named_rate(outcomes) >= NAMED_TARGET

    def test_every_mutant_has_its_bug_id(self, outcomes):
        check_bug_ids(outcomes)
