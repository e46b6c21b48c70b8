"""Name the bug: when a student's cell differs from the oracle, try the usual mistakes and see which fits.

Each suspect is the course equations with one mistake made on purpose (``suspects``), its sentence that of its
record in ``mistakes.lstm_cell``. If the student's output matches a suspect to float64 precision, the message
names that mistake instead of only saying "differs".
"""

from . import suspects
from .mistakes import sentences
from .mistakes.lstm_cell import MISTAKES

SUSPECTS = sentences(MISTAKES)  # the suspects of notebook 1's mistakes, in the order they are tried


def name_cell_bug(params, x, h, c, got_h, got_c) -> tuple[str, str] | None:
    """(bug id, sentence) of the mistake that explains the student's (h, c), or None if none fits."""
    return suspects.name_bug({}, SUSPECTS, params, x, h, c, got_h, got_c, h_only=("no_tanh_on_c", "sigmoid_on_c"))
