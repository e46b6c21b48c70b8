"""The course's notebooks, one place: assignment -> its hidden tests' module -> its mistakes and bug zoo.

The grader judges a grading cell with the hidden test of the same name as the cell's ``grade_id`` in
the assignment's checks module; the zoo and the tests read the same table.
"""

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Notebook:
    assignment: str
    checks: str  # module under autograder.checks
    zoo: str | None = None  # module under autograder.zoo (mutants and correct styles), if it has one


NOTEBOOKS = {nb.assignment: nb for nb in (
    Notebook("01_lstm_cell", "lstm_cell", "lstm_cell"),
    Notebook("02_stacked_lstm", "stacked_lstm", "stacked_lstm"),
    Notebook("03_coupled_gate", "coupled_gate", "coupled_gate"),
    Notebook("04_peepholes", "peepholes", "peepholes"),
    Notebook("05_training_lab", "training_lab"),
    Notebook("06_speed_ladder", "speed_ladder", "speed_ladder"),
    Notebook("07_real_data", "real_data", "real_data"),
)}


def checks_module(assignment: str):
    nb = NOTEBOOKS.get(assignment)
    return importlib.import_module(f"autograder.checks.{nb.checks}") if nb else None


def hidden_test(assignment: str, grade_id: str):
    """The hidden test that judges a grading cell, or None."""
    module = checks_module(assignment)
    test = getattr(module, str(grade_id), None) if module else None
    return test if getattr(test, "hidden_test", False) else None


def mistakes(checks: str) -> dict:
    """The mistakes checks module ``checks`` names (``autograder.checks.mistakes.<checks>``); {} if none."""
    try:
        return importlib.import_module(f"autograder.checks.mistakes.{checks}").MISTAKES
    except ModuleNotFoundError as err:
        if err.name != f"autograder.checks.mistakes.{checks}":
            raise
        return {}
