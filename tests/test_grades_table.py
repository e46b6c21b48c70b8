"""`make grades`'s table: an assignment a student never handed in shows as "-" and counts as 0 of its max."""

from autograder.host.report import Score, table


def rows():
    return [
        Score("ada", "01_lstm_cell", "sigmoid", "sigmoid_values", 2.0, 2.0),
        Score("ada", "01_lstm_cell", "lstm_cell", "cell_forward", 3.0, 5.0),
        Score("ada", "02_stacked_lstm", "lstm", "lstm_forward", 4.0, 4.0),
        Score("bob", "01_lstm_cell", "sigmoid", "sigmoid_values", 1.0, 2.0),
        Score("bob", "01_lstm_cell", "lstm_cell", "cell_forward", 5.0, 5.0),
    ]


def line(printed: str, label: str) -> list[str]:
    return next(row.split()[1:] for row in printed.splitlines() if row.split() and row.split()[0] == label)


def test_a_missing_assignment_is_a_dash_and_every_total_is_out_of_the_same_points():
    printed = table(rows())
    assert line(printed, "02_stacked_lstm:lstm") == ["4/4", "-"]
    assert line(printed, "total") == ["9/11", "6/11"]
    assert "not handed in" in printed


def test_a_class_that_handed_everything_in_has_no_dash():
    printed = table([r for r in rows() if r.assignment == "01_lstm_cell"])
    assert line(printed, "total") == ["5/7", "6/7"]
    assert "-" not in "".join(line(printed, "01_lstm_cell:sigmoid")) and "not handed in" not in printed
