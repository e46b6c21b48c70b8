"""Output floods (issue 23): what a kernel sends is bounded on the grader's side, whatever the kernel does.

First ResilientExecute's handling of messages on its own, fed messages as a hostile kernel sends them: every
kind counts against the cell's cap, the notebook's cap and the cap on outputs; what is bigger than the room
left is cut; the reply's error is cut; the kernel's own stdout and stderr reach nbgrader's log bounded; a
socket refuses a message part over the limit. Then real floods graded through the batch beside their control,
the planted bug untouched: ~300 MB in many messages of every kind, and one single message of 200 MB. Each
scores what the control scores and says what was dropped; its graded notebook stays under NOTEBOOK_BOUND and
its feedback page under FEEDBACK_BOUND.
"""

import asyncio
import concurrent.futures
import subprocess
import sys
import time

import nbformat
import pytest
import zmq
from corpus import LIMITS, NO_TANH, A, after, environ, planted
from corpus.flood import NOTE

from autograder.host import execute, report
from autograder.host.batch import grade
from autograder.host.course import copy_course
from autograder.host.execute import ResilientExecute
from autograder.host.submissions import submit

CAP = ResilientExecute.max_output_bytes.default_value  # 2 MB a cell
# the release (about 0.25 MB with the grader's outputs), one flooded cell's cap, notes
NOTEBOOK_BOUND = 3_000_000
FEEDBACK_BOUND = 3_000_000  # the control's page (about 0.45 MB: nbconvert's page and styles) and the cell's 2 MB

MANY = """
from IPython.display import clear_output, display, update_display

display({"text/plain": "first"}, raw=True, display_id="first")
for k in range(3000):  # many small outputs: past 100, the cap on their number drops them
    display({"text/plain": f"small {k}"}, raw=True)
text = "y" * 10_000_000
for k in range(8):  # 10 MB messages of every kind: the first update is cut to fit, the rest are dropped
    update_display({"text/plain": text}, raw=True, display_id="first")
    print(text)
    display({"text/plain": text}, raw=True)
    clear_output(wait=True)
text * 5  # and a 50 MB result
"""
HUGE = 'print("h" * 200_000_000)\n'


# --------------------------------------------------------------------------- the caps, message by message


def _executor(cells: int = 3) -> ResilientExecute:
    ex = ResilientExecute()
    ex.nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x") for _ in range(cells)])
    for cell in ex.nb.cells:
        cell.metadata["execution"] = {}
    ex.reset_execution_trackers()
    ex.clear_before_next_output = False
    ex._tallies, ex._notebook_used = {}, 0
    return ex


def _send(ex, index: int, kind: str, content, header_date=None) -> None:
    msg = {"msg_type": kind, "header": {"msg_type": kind, "date": header_date}, "parent_header": {"msg_id": "m"},
           "content": content, "metadata": {}, "buffers": []}
    ex.process_message(msg, ex.nb.cells[index], index)


def _size(cell) -> int:
    return len(nbformat.writes(nbformat.v4.new_notebook(cells=[cell])))


def test_every_kind_counts_and_what_is_kept_is_cut_to_fit():
    ex = _executor()
    big = "z" * 5_000_000
    _send(ex, 0, "error", {"ename": "E" * 1000, "evalue": big, "traceback": [big, big]})
    _send(ex, 0, "stream", {"name": "stdout", "text": "later"})
    cell = ex.nb.cells[0]
    assert [o.output_type for o in cell.outputs] == ["error"]
    assert len(cell.outputs[0].ename) == 200 and len(cell.outputs[0].evalue) < CAP
    assert _size(cell) < CAP + 10_000
    ex._close_tally(cell, 0)
    note = cell.outputs[-1].text
    assert NOTE in note and "1 output(s) cut to fit" in note and "1 stream" in note

    # kinds that keep nothing still count: a comm of 3 MB leaves no room in the next cell
    _send(ex, 1, "comm_msg", {"comm_id": "c", "data": {"state": big[:3_000_000]}})
    _send(ex, 1, "clear_output", {"wait": False})
    _send(ex, 1, "display_data", {"data": {"text/plain": "x"}, "metadata": {}})
    assert ex.nb.cells[1].outputs == [] and ex._tallies[1].dropped == {"clear_output": 1, "display_data": 1}


def test_the_notebook_cap_and_the_cap_on_outputs():
    ex = _executor(6)
    for index in range(6):
        _send(ex, index, "stream", {"name": "stdout", "text": "a" * 3_000_000})
    kept = sum(_size(c) for c in ex.nb.cells)
    assert kept < ResilientExecute.max_notebook_output_bytes.default_value + 10_000
    assert ex.nb.cells[5].outputs == [] and ex._tallies[5].dropped == {"stream": 1}

    ex = _executor(1)
    for k in range(500):
        _send(ex, 0, "display_data", {"data": {"text/plain": str(k)}, "metadata": {}})
        _send(ex, 0, "stream", {"name": "stdout", "text": "s"})  # past the cap, it goes on the stream before it
    outputs = ex.nb.cells[0].outputs
    assert len(outputs) == ResilientExecute.max_outputs.default_value
    assert ex._tallies[0].dropped == {"display_data": 450} and outputs[-1].text == "s" * 451


def test_hostile_fields_do_not_reach_the_notebook():
    ex = _executor(3)
    _send(ex, 0, "display_data", {"data": {"text/plain": "first"}, "metadata": {}, "transient": {"display_id": "d"}})
    # an update from another cell replaces the first cell's output: cut to the room of the cell that sent it
    _send(ex, 1, "update_display_data", {"data": {"text/plain": "u" * 9_000_000}, "metadata": {"m": "m" * 10**6},
                                         "transient": {"display_id": "d"}})
    assert 1_000_000 < _size(ex.nb.cells[0]) < CAP + 10_000
    # execution counts that are not numbers, contents that are not objects, odd names and types
    _send(ex, 2, "execute_input", {"code": "", "execution_count": "9" * 10**6})
    _send(ex, 2, "execute_result", {"data": {}, "metadata": {}, "execution_count": ["x"] * 10**5})
    _send(ex, 2, "stream", ["not", "an", "object"], header_date="2024")
    _send(ex, 2, "stream", {"name": "x" * 10**6, "text": 5})
    cell = ex.nb.cells[2]
    assert cell.execution_count is None
    assert [(o.output_type, o.get("name"), o.get("text")) for o in cell.outputs] == [
        ("execute_result", None, None), ("stream", "stdout", "")]
    assert _size(cell) < 1000


def test_the_replys_error_is_cut():
    ex = _executor(1)
    cell = ex.nb.cells[0]
    reply = {"content": {"status": "error", "ename": "E", "evalue": "v" * 10**7, "traceback": ["t" * 10**7] * 3}}
    ex.on_cell_executed(cell=cell, cell_index=0, execute_reply=reply)
    assert [o.output_type for o in cell.outputs] == ["error"] and cell.outputs[0].ename == "E"
    assert _size(cell) < execute.REPLY_ERROR_BYTES + 1000


def test_the_kernels_own_stdout_reaches_the_log_bounded(capfd):
    limit = 4096
    with execute._relayed(limit) as fd:
        writer = subprocess.Popen([sys.executable, "-c", "import os\nfor _ in range(300): os.write(1, b'k' * 65536)"],
                                  stdout=fd, stderr=fd)
    writer.wait()
    time.sleep(0.5)
    err = capfd.readouterr().err
    assert "bytes the kernel wrote to its stdout and stderr were dropped" in err
    assert 2 * limit <= len(err) < 2 * limit + 200


def test_a_socket_refuses_a_part_over_the_limit(tmp_path):
    async def scenario():
        context = execute._bounded_context(1_000_000, 4)
        sub = context.socket(zmq.SUB)  # as a kernel client's sockets are made
        assert (sub.getsockopt(zmq.MAXMSGSIZE), sub.getsockopt(zmq.RCVHWM)) == (1_000_000, 4)
        pub = zmq.Context.instance().socket(zmq.PUB)
        pub.bind(f"ipc://{tmp_path}/s")
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(f"ipc://{tmp_path}/s")
        try:
            await asyncio.sleep(0.3)
            pub.send(b"small")
            assert await sub.poll(2000) and await sub.recv() == b"small"
            pub.send(b"x" * 2_000_000)
            await asyncio.sleep(0.3)
            pub.send(b"after")  # the connection is gone, and stays gone: nothing more arrives
            assert not await sub.poll(1000)
        finally:
            sub.close(linger=0)
            pub.close(linger=0)
            context.term()

    # in a thread of its own: a module that ran before in this process may have left an event loop running here
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()


# --------------------------------------------------------------------------- real floods through the batch


@pytest.fixture(scope="module")
def flooded(tmp_path_factory):
    course = copy_course(tmp_path_factory.mktemp("flood"))
    course.nbgrader("generate_assignment", A, "--force")
    submit(course, "control", A, planted(course))
    after(planted, "lstm_cell", MANY)(course, "many_messages")
    after(planted, "sigmoid", HUGE)(course, "one_huge_message")
    with environ(**LIMITS):
        result = grade(course, A, jobs=1)
    feedback = course.feedback(A)
    return course, result, report.by_exercise(report.scores(course)), feedback


def _graded(course, student) -> str:
    return course.notebook("autograded", A, student).read_text()


@pytest.mark.parametrize("student", ["control", "many_messages", "one_huge_message"])
def test_a_flood_costs_nothing_and_stays_small(flooded, student):
    course, result, scores, feedback = flooded
    assert result.returncode == 0, result.stdout + result.stderr
    assert feedback[0], feedback[1]
    assert {ex: scores[(student, A, ex)][0] for ex in NO_TANH} == NO_TANH, result.stdout
    assert course.notebook("autograded", A, student).stat().st_size < NOTEBOOK_BOUND
    page = course.dir("feedback") / student / A / f"{A}.html"
    assert page.stat().st_size < FEEDBACK_BOUND


def test_the_flooded_cell_says_what_was_dropped(flooded):
    course = flooded[0]
    nb = nbformat.reads(_graded(course, "many_messages"), 4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "update_display" in c.source)
    note = cell.outputs[-1].text
    assert NOTE in note and "cut to fit" in note and "display_data" in note, note
    assert len(cell.outputs) <= ResilientExecute.max_outputs.default_value + 1
    assert NOTE not in _graded(course, "control")


def test_a_message_over_the_limit_stops_the_kernel_and_skips_the_cell(flooded):
    course, result = flooded[:2]
    text = _graded(course, "one_huge_message")
    assert "the most one message may carry" in text and "ran the rest of the notebook without this cell" in text
    assert "one_huge_message: graded" in result.stdout and "[1 cell(s) skipped]" in result.stdout
