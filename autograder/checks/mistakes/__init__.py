"""The mistakes a hidden test can name, one record each.

A ``Mistake`` holds everything about one mistake: its bug id (``GradingFailure.bug``, qualified by the checks
module that raises it), the sentence the student reads, whether a suspect step of ``suspects`` reproduces it,
and the mutants that make it: realistic edits of the reference answer, which the bug zoo grades through
nbgrader and which must get this bug id back. Each notebook's mistakes are in the module of this package
named like its checks module (``mistakes.lstm_cell``), those of the shared one-step cell tests in
``mistakes.cell``; the checks take their suspects' sentences from there, the zoo its mutants.
``tests/test_mistakes.py`` checks that every bug id a check can raise is listed, and that every listed mistake
has a mutant.

A family of mistakes with one parameter (PyTorch's four row blocks read in another order, the peepholes of
some gates missing) is one record whose id ends in ``*``; its mutants name the member they make.
"""

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    """``old`` replaced by ``new`` in the reference answer of solution cell ``cell``.

    ``name``: the zoo's name for it (default: the mistake's id); ``message``: a regular expression the message
    the student sees must match; ``bug``: the id it must get (default: the mistake's; a family's mutant names
    its member); ``assignment``: the notebook (default: the one whose mistakes list it); ``at``: the grading cell
    that names it (default: the first of its exercise that fails, when an earlier test catches the mutant first).
    """

    cell: str
    old: str
    new: str
    name: str = ""
    description: str = ""
    message: str = ""
    bug: str = ""
    assignment: str = ""
    at: str = ""


@dataclass(frozen=True)
class Mistake:
    """``bug``: the id within its module; ``sentence``: what the student reads ("" where the check builds the
    message from what it saw); ``suspect``: a step of ``suspects`` reproduces it (``suspects.mistake(bug)``);
    ``no_mutant``: why no mutant can make it reproducibly (a mistake needs mutants or this reason)."""

    bug: str
    sentence: str = ""
    mutants: tuple[Mutant, ...] = ()
    suspect: bool = False
    no_mutant: str = ""

    def matches(self, bug: str) -> bool:
        return fnmatch.fnmatchcase(bug, self.bug)


def mistake(bug: str, sentence: str = "", *mutants: Mutant) -> Mistake:
    return Mistake(bug, sentence, tuple(mutants))


def suspect(bug: str, sentence: str, *mutants: Mutant) -> Mistake:
    """A mistake a suspect step of ``suspects`` reproduces (``name_bug`` tries it)."""
    return Mistake(bug, sentence, tuple(mutants), suspect=True)


def table(*mistakes: Mistake) -> dict[str, Mistake]:
    """{bug: mistake}, in order; an id twice is an error."""
    out: dict[str, Mistake] = {}
    for m in mistakes:
        if m.bug in out:
            raise ValueError(f"mistake {m.bug} listed twice")
        out[m.bug] = m
    return out


def sentences(mistakes: dict[str, Mistake]) -> dict[str, str]:
    """{bug: sentence} of the suspects of a table, in order: what ``suspects.name_bug`` tries."""
    return {m.bug: m.sentence for m in mistakes.values() if m.suspect}


def find(mistakes: dict[str, Mistake], bug: str) -> Mistake | None:
    """The record of ``bug`` (an id within the module), a family's included."""
    return mistakes.get(bug) or next((m for m in mistakes.values() if m.matches(bug)), None)
