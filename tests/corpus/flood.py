"""Third-round hostile submissions: flood. Each case is graded with the others in tests/test_hostile.py.

The measured attack: a cell that raises 12 error outputs of 25 MB through ``showtraceback`` made a graded
notebook of 629 MB (the output cap counted streams and displays only). Over the planted bug it must score
what the planted bug earns honestly, and the graded notebook must say what was cut and dropped. The cell
comes after the last grading cell: the shell object it calls is itself a finding of the scan
(``autograder/checks/scan.py``), which would withhold the points of the tests after it.
"""

from . import NO_TANH, Case, after, planted

# What the note at the end of a flooded cell starts with (autograder/host/execute.py, _Tally.note).
NOTE = "this cell sent more output than the grader keeps"

ERRORS = """
ip = get_ipython()
for _ in range(12):
    try:
        raise ValueError("x" * 25_000_000)
    except ValueError:
        ip.showtraceback()
"""


def cases() -> list:
    return [
        Case("flood_errors", after(planted, "load_from_torch_stripes", ERRORS), NO_TANH,
             [NOTE, "1 output(s) cut to fit", "error"], set(),
             about="12 error outputs of 25 MB each through showtraceback"),
    ]
