"""Notebook 7's bug zoo and correct styles through real nbgrader."""

import pytest
from zoo_common import (
    NAMED_TARGET,
    check_bug_ids,
    check_mutants_caught,
    check_styles_full_marks,
    graded_zoo,
    named_rate,
)

from autograder import zoo

A = "07_real_data"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return graded_zoo(tmp_path_factory, A)


def test_every_mutant_loses_points_on_its_exercise(outcomes):
    check_mutants_caught(outcomes)


def test_every_correct_style_gets_full_marks(outcomes):
    check_styles_full_marks(outcomes)


def test_messages_name_the_bug(outcomes):
    print(zoo.table(outcomes))
    assert named_rate(outcomes) >= NAMED_TARGET


def test_every_mutant_has_its_bug_id(outcomes):
    check_bug_ids(outcomes)
