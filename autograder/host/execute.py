"""nbgrader preprocessors for grading submissions that may be broken or hostile.

``ResilientExecute`` runs the notebook like nbgrader's Execute, with a budget for the whole notebook,
and survives what student code does to its kernel: a cell that kills the kernel (``os._exit``,
``os.abort``, out of memory) or keeps it busy after being interrupted is marked with a message, and
the notebook runs again in a fresh kernel without that cell, so the rest of the work still earns
its points.

Output is bounded on this side, because the kernel is not trusted to bound it: every message the kernel
sends while a cell runs counts against the cell's cap (``max_output_bytes``, and ``max_outputs`` outputs) and
the notebook's (``max_notebook_output_bytes``); a message bigger than what is left is cut, later ones are
dropped, and one note at the end of the cell says what. ZMQ receives a message whole before any of that runs,
so the connections refuse a message part over ``max_message_bytes``, and a watch stops the kernel when a
connection is refused or this process grows by more than ``memory_margin_mb`` while a cell runs: the cell
is then skipped with a message, like a cell that kills the kernel. What the kernel writes to its own stdout
and stderr reaches nbgrader's log only up to ``kernel_log_bytes``.

A grading cell with hidden tests is never run in the kernel: the executor judges it here, in the grader's
process, with the hidden test named like the cell's ``grade_id`` (``autograder.registry``). The test reaches
the student's code through the kernel's probe, one exchange at a time (``KernelLink``), and the executor
writes the verdict into the cell itself; whatever the kernel prints or raises cannot change it. Each verdict
also goes to the grading log as a ``verdict`` record (the cell, passed or not, the failure's bug id and
message): the class report reads those, without grading again.
"""

import contextlib
import ctypes
import datetime
import itertools
import json
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from queue import Empty

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbclient.client import NotebookClient
from nbclient.exceptions import CellExecutionComplete, CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade
from traitlets import Integer, Type, default

from .. import gradelog, registry
from ..checks import scan
from ..checks.link import ExchangeFailed, ExchangeTimeout, Link, using
from ..kernel import wire
from ..settings import load as load_settings
from .nbgrader_ext import HIDDEN_BEGIN, BudgetedExecute


def log_path(resources) -> str | None:
    """The grading log of the notebook nbgrader is working on, if grading through the batch."""
    info = (resources or {}).get("nbgrader", {})
    return gradelog.path_for(info.get("assignment", ""), info.get("student", ""))


def error_output(name: str, text: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=name, evalue=text,
                        traceback=[f"\x1b[0;31m{name}\x1b[0m: {text}"])


class _Stuck(Exception):
    pass


class ResilientExecute(BudgetedExecute):
    """Execute with a notebook budget, restarts around cells that kill or wedge the kernel, bounded output."""

    max_restarts = Integer(3, help="Fresh kernels to try after the kernel dies or stays busy").tag(config=True)
    responsive_timeout = Integer(5, help="Seconds an interrupted kernel has to become responsive").tag(
        config=True)
    max_output_bytes = Integer(2_000_000, help="Bytes of messages a cell's kernel may send while it runs (every "
                               "kind counts); a message past them is cut to fit or dropped, with a note").tag(
        config=True)
    max_outputs = Integer(100, help="Outputs a cell may keep; later ones are dropped, with a note").tag(config=True)
    max_notebook_output_bytes = Integer(8_000_000, help="Bytes of output the whole notebook may keep").tag(
        config=True)
    max_message_bytes = Integer(wire.MAX_BYTES + 2**24, help=(
        "Largest message part the grader takes from the kernel (ZMQ_MAXMSGSIZE; a probe's reply is at most "
        "wire.MAX_BYTES): a kernel that sends a bigger one is stopped and its cell skipped")).tag(config=True)
    receive_queue = Integer(1000, help=(
        "Messages from the kernel queued on each connection (ZMQ_RCVHWM; past them the kernel drops its "
        "messages, status ones too): the watch on this process's memory, not the queue, bounds what it holds")).tag(
        config=True)
    memory_margin_mb = Integer(1024, help=(
        "How much this process may grow while a cell or a hidden test runs (messages from the kernel pile up in "
        "it before any cap applies); past that the kernel is stopped and the cell skipped")).tag(config=True)
    kernel_log_bytes = Integer(65536, help=(
        "Bytes of the start, and of the end, of what the kernel writes to its own stdout and stderr that reach "
        "nbgrader's log; the rest is dropped")).tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", BoundedKernelManager)
        super().__init__(*args, **kwargs)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.max_message_bytes, km.receive_queue = self.max_message_bytes, self.receive_queue
        return km

    def preprocess(self, nb, resources=None, km=None):
        if not load_settings().ipc_prefix:  # nbgrader_config.py routes everything else to the batch
            raise RuntimeError("ResilientExecute grades only in the batch's sandboxed kernel, which has the probe: "
                               "grade with `make autograde` or `nbgrader autograde` in the course directory")
        self._deadline = time.monotonic() + self.notebook_budget
        # the hidden tests (and torch) load here while the kernel starts and runs the student's cells
        assignment = (resources or {}).get("nbgrader", {}).get("assignment", "")
        threading.Thread(target=registry.checks_module, args=(assignment,), daemon=True).start()
        found = scan.findings(nb.cells, _student_cell)  # ready-made LSTMs, evasion, forbidden calls
        self._withheld = scan.withheld(nb.cells, _student_cell, found)  # grade_id -> the finding that zeroes it
        for finding in found[:10]:
            gradelog.append(log_path(resources), finding.source_record())
        gradelog.append(log_path(resources), {"kind": "grading"})  # the verdicts after this one are this run's
        skipped: dict[int, tuple] = {}  # cell index -> (why, the outputs it had)
        failures: list[int] = []  # where the kernel died or wedged, in order
        failure = None
        for _attempt in range(self.max_restarts + 1):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code" and index not in skipped:
                    cell.outputs = []
                    cell.execution_count = None
            NotebookClient.__init__(self, nb, km)
            self.reset_execution_trackers()
            self._check_assign_resources(resources)
            self._current = None
            try:
                self._run_cells(resources, skipped)
                failure = None
                break
            except (DeadKernelError, _Stuck) as err:
                if self._current is None:
                    raise
                failure = self._skip(self._current, err, resources, skipped, failures)
                if time.monotonic() > self._deadline:
                    break
        for index, (reason, outputs) in skipped.items():
            nb.cells[index].outputs = outputs + [error_output(
                "KernelStopped", f"{reason}. The grader restarted the kernel and ran the rest of the notebook "
                "without this cell.")]
        if failure is not None and len(skipped) > self.max_restarts:
            gradelog.append(log_path(resources), {"kind": "gave-up", "detail": failure})
        self.set_widgets_metadata()
        return self.nb, self.resources

    def _run_cells(self, resources, skipped: dict) -> None:
        """One attempt: a fresh kernel runs every code cell not skipped; a cell that stops or wedges the kernel
        raises DeadKernelError or _Stuck with ``self._current`` at its index."""
        self._tallies: dict[int, _Tally] = {}
        self._notebook_used = 0
        self._watch = None
        with _relayed(self.kernel_log_bytes) as log_fd, self.setup_kernel(stdout=log_fd, stderr=log_fd):
            self._watch = _Watch(self.km, self.kc, self.memory_margin_mb * 2**20, self.max_message_bytes)
            try:
                info_msg = self.wait_for_reply(self.kc.kernel_info())
                self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
                for index, cell in enumerate(self.nb.cells):
                    if index in skipped or cell.cell_type != "code":
                        continue
                    if time.monotonic() > self._deadline:
                        cell.outputs = [error_output(
                            "NotRun", f"not run: the notebook used up its time budget of "
                            f"{self.notebook_budget} s before reaching this cell.")]
                        continue
                    self._current = index
                    self._run_cell(cell, resources, index)
                    self._current = None
            finally:
                self._watch.close()

    def _run_cell(self, cell, resources, index: int) -> None:
        with self._watch.armed():
            try:
                if judged_here(cell):
                    self.judge(cell, resources, index)
                else:
                    self.preprocess_cell(cell, resources, index)
            except CellTimeoutError:  # no reply, or no end of output, after the interrupt
                if not any(o.get("ename") == "CellTimeoutError" for o in cell.outputs):
                    cell.outputs.append(error_output(
                        "CellTimeoutError", f"this cell ran past its time limit ({self.timeout} s)"))
            finally:
                self._close_tally(cell, index)
        if self._watch.reason:
            raise _Stuck(self._watch.reason)
        if _timed_out(cell) and not self._responsive():
            raise _Stuck("this cell ran past its time limit and the kernel stayed busy after "
                         "being interrupted (an infinite loop that ignores KeyboardInterrupt?)")
        if _out_of_memory(cell):
            raise _Stuck("this cell ran out of memory (the kernel's limit is "
                         f"{load_settings().memory_mb} MB), "
                         "and what it allocated would starve the cells after it")

    def _skip(self, current: int, err: Exception, resources, skipped: dict, failures: list) -> str:
        """Mark the cell to skip on the next attempt after ``current`` stopped or wedged the kernel; the reason."""
        nb = self.nb
        if isinstance(err, _Stuck):
            reason = str(err)
        elif self._watch is not None and self._watch.reason:
            reason = self._watch.reason
        else:
            reason = f"the kernel stopped while running this cell: {_exit_reason(log_path(resources))}"
        culprit = current
        if failures and not _student_cell(nb.cells[current]):
            # A second grader cell fails after the first was skipped: the kernel itself was broken
            # earlier (builtins replaced, ...). Blame the student's last cell before the first failure.
            before = [k for k in range(failures[0] - 1, -1, -1)
                      if _student_cell(nb.cells[k]) and k not in skipped and nb.cells[k].cell_type == "code"]
            if before:
                culprit = before[0]
                reason = (f"after this cell ran, grader cells could no longer run ({reason[0].lower()}"
                          f"{reason[1:]})")
                for k in [k for k in skipped if not _student_cell(nb.cells[k])]:
                    del skipped[k]
        failures.append(current)
        skipped[culprit] = (reason, [o for o in nb.cells[culprit].outputs
                                     if o.get("ename") != "CellTimeoutError"])
        gradelog.append(log_path(resources), {"kind": "cell-skipped", "cell": culprit, "detail": reason})
        return reason

    def judge(self, cell, resources, index):
        """Run the cell's hidden test here against the kernel; its verdict becomes the cell's output."""
        from ..checks.harness import GradingFailure, passed_line, take_notes

        info = (resources or {}).get("nbgrader", {})
        assignment = info.get("assignment", "")
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        module = registry.NOTEBOOKS[assignment].checks if assignment in registry.NOTEBOOKS else "grader"
        log = log_path(resources)
        withheld = self._withheld.get(grade_id)  # the test still runs: what it says goes to the instructor's review
        kind = {"kind": "withheld", **withheld.review_record()} if withheld else {"kind": "verdict"}

        def failed(name, text, bug, named=False, record=None):
            cell.outputs = [error_output(name, text)]
            gradelog.append(log, {**(record or kind), "cell": grade_id, "passed": False, "bug": bug, "named": named,
                                  "message": f"{name}: {text}"[:600]})

        test = registry.hidden_test(assignment, grade_id)
        cell.outputs = []
        if test is None:
            failed("GradingFailure", f"the grader has no hidden test {grade_id!r} for this notebook (a grader "
                   "problem: tell your instructor).", f"{module}.no_hidden_test")
            return
        link = KernelLink(self, time.monotonic() + (self._get_timeout(cell) or self.notebook_budget))
        try:
            with using(link):
                test()
            cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=passed_line(test) + "\n")]
            gradelog.append(log, {**kind, "cell": grade_id, "passed": True})
        except GradingFailure as failure:
            bug = failure.bug if failure.bug and "." in failure.bug else f"{module}.{failure.bug or grade_id}"
            failed("GradingFailure", str(failure), bug, named=failure.named)
        except ExchangeTimeout:
            failed("CellTimeoutError", "your code did not return within this test's time "
                   f"limit ({self.timeout} s), so the test could not finish", f"{module}.timeout", named=True)
            if not self._responsive():
                raise _Stuck("your code ran past the test's time limit and the kernel stayed busy after being "
                             "interrupted (an infinite loop that ignores KeyboardInterrupt?)") from None
        except ExchangeFailed as err:
            failed("GradingFailure", f"the grader got no answer from your kernel ({err}). Code in the notebook "
                   "broke the grader's probe; this test earns no points.", f"{module}.probe_silent", named=True)
            gradelog.append(log, {"kind": "probe-silent", "cell": grade_id, "detail": str(err)[:300]})
        finally:
            for note in take_notes():
                gradelog.append(log, {"cell": grade_id, **note})
            if withheld:
                failed("GradingFailure", withheld.message(cell.outputs), f"{module}.{withheld.bug}", True,
                       {"kind": "verdict"})

    def _responsive(self) -> bool:
        from jupyter_core.utils import run_sync

        return run_sync(self._async_responsive)()

    async def _async_responsive(self) -> bool:
        from jupyter_core.utils import ensure_async

        msg_id = self.kc.execute("", silent=True, store_history=False)
        deadline = time.monotonic() + self.responsive_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=remaining))
            except Empty:
                return False
            if msg["parent_header"].get("msg_id") == msg_id:
                return True

    # ------------------------------------------------------------------ what the kernel sends while a cell runs

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        """nbclient's loop over the cell's iopub messages, which also goes on past a message that does not decode."""
        from jupyter_core.utils import ensure_async

        while True:
            try:
                msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
            except zmq.ZMQError:
                raise
            except Exception:  # a bad signature, header or JSON: jupyter_client could not read it
                self._tally(cell_index).drop("undecodable", MESSAGE_BYTES)
                continue
            parent = msg.get("parent_header")
            if isinstance(parent, dict) and parent.get("msg_id") == parent_msg_id:
                try:
                    self.process_message(msg, cell, cell_index)
                except CellExecutionComplete:
                    return

    def process_message(self, msg, cell, cell_index):
        """nbclient's handling of one message, within the cell's caps: what is kept is cut to fit the room left,
        past the caps nothing is kept, and nbclient sees only the fields it needs, with the types it expects."""
        kind = msg.get("msg_type")
        content = msg.get("content") if isinstance(msg.get("content"), dict) else {}
        if kind == "status":
            state = "idle" if content.get("execution_state") == "idle" else "busy"
            return super().process_message(_message(msg, kind, {"execution_state": state}), cell, cell_index)
        tally = self._tally(cell_index)
        size = MESSAGE_BYTES if kind == "execute_input" else max(MESSAGE_BYTES, _rough_size(content))
        room = min(self.max_output_bytes - tally.received, self.max_notebook_output_bytes - self._notebook_used)
        tally.received += size
        if kind == "execute_input":  # the cell's code, echoed: only its execution count is used
            count = content.get("execution_count")
            if type(count) is int:
                cell["execution_count"] = count
            return None
        if kind not in OUTPUT_KINDS:  # comms (no widgets in grading), anything else: nothing of it is kept
            return None
        if kind == "clear_output":
            if room < MIN_ROOM:
                tally.drop(kind, size)
                return None
            return super().process_message(_message(msg, kind, {"wait": content.get("wait") is True}), cell,
                                           cell_index)
        clean = _clean(kind, content)
        new = kind != "update_display_data" and not self._continues_stream(cell.outputs, kind, clean)
        if room < MIN_ROOM or (new and len(cell.outputs) >= self.max_outputs and not self.clear_before_next_output):
            tally.drop(kind, size)
            return None
        kept, used, cut = fit(clean, room)
        tally.cut += cut
        self._notebook_used += used
        content = _complete(kind, kept if isinstance(kept, dict) else {}, _display_id(kind, content))
        return super().process_message(_message(msg, kind, content), cell, cell_index)

    def output(self, outs, msg, display_id, cell_index):
        if self._continues_stream(outs, msg["msg_type"], msg["content"]):
            outs[-1]["text"] += msg["content"]["text"]
            return outs[-1]
        return super().output(outs, msg, display_id, cell_index)

    def _continues_stream(self, outs, kind, content) -> bool:
        """A stream message that goes on at the end of the same stream: one output (the notebook shows them as one)."""
        return (kind == "stream" and bool(outs) and not self.clear_before_next_output
                and outs[-1].get("output_type") == "stream" and outs[-1].get("name") == content.get("name"))

    def on_cell_executed(self, **kwargs):
        """nbgrader adds the reply's error to a cell that shows none: it comes from the kernel too, so it is cut
        (to REPLY_ERROR_BYTES, past the caps: a cell that failed must show it)."""
        reply = kwargs.get("execute_reply")
        content = reply.get("content") if isinstance(reply, dict) else None
        if isinstance(content, dict) and content.get("status") == "error":
            kept, _, _ = fit(_clean("error", content), REPLY_ERROR_BYTES)
            kwargs["execute_reply"] = {**reply, "content": {**_complete("error", kept, None), "status": "error"}}
        return super().on_cell_executed(**kwargs)

    def _tally(self, cell_index: int) -> "_Tally":
        return self._tallies.setdefault(cell_index, _Tally())

    def _close_tally(self, cell, index: int) -> None:
        """The cell's note on what of its output was cut or dropped, if anything was."""
        tally = self._tallies.get(index)
        if tally is not None and (tally.cut or tally.dropped):
            cell.outputs.append(NotebookNode(output_type="stream", name="stdout", text=tally.note(self)))
            _release_memory()


def judged_here(cell) -> bool:
    return cell.cell_type == "code" and is_grade(cell) and HIDDEN_BEGIN in cell.source


class KernelLink(Link):
    """Exchanges with the probe in the kernel ``executor`` runs: one message each way on a Jupyter comm."""

    def __init__(self, executor, deadline: float):
        self.executor, self.deadline = executor, deadline

    def submitted(self) -> dict[str, str]:
        cells = {}
        for index, cell in enumerate(self.executor.nb.cells):
            if cell.cell_type == "code" and _student_cell(cell):
                cells[cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"] = cell.source
        return cells

    def exchange(self, request: dict) -> dict:
        from jupyter_core.utils import run_sync

        return run_sync(self._exchange)(wire.dumps(request))

    def _comm(self) -> str:
        """This kernel's comm to the probe, opened on first use (a restarted kernel gets a new one)."""
        ex = self.executor
        opened = getattr(ex, "_probe_comm", None)
        if opened and opened[0] is ex.kc:
            return opened[1]
        comm_id = uuid.uuid4().hex
        ex.kc.shell_channel.send(ex.kc.session.msg(
            "comm_open", {"comm_id": comm_id, "target_name": wire.COMM_TARGET, "data": {}}))
        ex._probe_comm = (ex.kc, comm_id)
        return comm_id

    async def _exchange(self, text: str) -> dict:
        from jupyter_core.utils import ensure_async

        kc, km = self.executor.kc, self.executor.km
        msg = kc.session.msg("comm_msg", {"comm_id": self._comm(), "data": {"request": text}})
        kc.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        body, error = None, None
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                await ensure_async(km.interrupt_kernel())
                raise ExchangeTimeout("the student's code did not return in time")
            try:
                msg = await ensure_async(kc.iopub_channel.get_msg(timeout=min(remaining, 2.0)))
            except Empty:
                if not await ensure_async(km.is_alive()):
                    raise DeadKernelError("Kernel died") from None
                continue
            except zmq.ZMQError:
                raise
            except Exception:  # a message jupyter_client could not read (signature, header, JSON)
                continue
            parent, content = msg.get("parent_header"), msg.get("content")
            if not isinstance(parent, dict) or parent.get("msg_id") != msg_id or not isinstance(content, dict):
                continue
            kind = msg.get("msg_type")
            if kind == "comm_msg":
                data = content.get("data", {})
                if isinstance(data, dict) and isinstance(data.get("reply"), str):
                    body = data["reply"]
            elif kind == "error":
                error = f"{content.get('ename')}: {str(content.get('evalue'))[:200]}"
            elif kind == "status" and content.get("execution_state") == "idle":
                break
        if body is None:
            raise ExchangeFailed(error or "the kernel sent no reply")
        try:
            return wire.loads(body)
        except wire.WireError as err:
            raise ExchangeFailed(f"a reply not in the grader's format: {err}") from None


def _student_cell(cell) -> bool:
    """Cells the student writes: answer cells and cells they added (no nbgrader metadata)."""
    meta = cell.get("metadata", {}).get("nbgrader")
    return not meta or (meta.get("solution") and not meta.get("locked"))


def _timed_out(cell) -> bool:
    return any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError" for o in cell.outputs)


_OOM = ("MemoryError", "OutOfMemoryError")
_OOM_TEXT = ("can't allocate memory", "CUDA out of memory", "DefaultCPUAllocator")


def _out_of_memory(cell) -> bool:
    for o in cell.outputs:
        if o.get("output_type") == "error" and (o.get("ename") in _OOM or any(
                t in str(o.get("evalue", "")) for t in _OOM_TEXT)):
            return True
    return False


def _exit_reason(path: str | None) -> str:
    time.sleep(0.3)  # the launcher writes the exit record as the kernel goes
    for record in reversed(gradelog.read(path)):
        if record.get("kind") == "exit" and not record.get("requested"):
            return str(record.get("detail", "it exited"))
    return "it exited (sys.exit in a thread, os._exit, a crash, or the memory limit)"


# --------------------------------------------------------------------------- output caps

OUTPUT_KINDS = frozenset({"stream", "display_data", "execute_result", "error", "update_display_data", "clear_output"})
MESSAGE_BYTES = 100  # what a message counts at least (its header alone is more): many empty ones add up
MIN_ROOM = 256  # less room than this left in a cap: a message is dropped rather than cut
REPLY_ERROR_BYTES = 4096
LINE_BYTES = 8  # nbformat writes text as one indented JSON string a line: what each line adds
FIT_DEPTH = 32
_NOTHING = object()


@dataclass
class _Tally:
    """What the kernel sent while one cell ran, and what of it was not kept whole."""

    received: int = 0  # bytes, about, of every message so far
    cut: int = 0  # outputs cut to fit
    dropped: dict = field(default_factory=dict)  # message kind -> how many were dropped
    dropped_bytes: int = 0

    def drop(self, kind: str, size: int) -> None:
        self.dropped[kind] = self.dropped.get(kind, 0) + 1
        self.dropped_bytes += size

    def note(self, limits: "ResilientExecute") -> str:
        what = [f"{self.cut} output(s) cut to fit"] if self.cut else []
        if self.dropped:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.dropped.items()))
            what.append(f"{sum(self.dropped.values())} message(s) dropped ({kinds}; about {_mb(self.dropped_bytes)})")
        return (f"\n[grader: this cell sent more output than the grader keeps ({_mb(limits.max_output_bytes)} and "
                f"{limits.max_outputs} outputs a cell, {_mb(limits.max_notebook_output_bytes)} a notebook): "
                f"{'; '.join(what)}]\n")


def _mb(n: int) -> str:
    return f"{n / 1e6:.3g} MB"


def fit(value, budget: int, depth: int = 0) -> tuple:
    """``value`` (JSON from the kernel) cut to at most ``budget`` bytes in the graded notebook: (what is kept, its
    size, whether anything was cut). Strings are cut at the end, lists and objects keep their first items;
    ``_NOTHING`` is kept when nothing of ``value`` fits."""
    if isinstance(value, str):
        return _fit_text(value, budget)
    if isinstance(value, (dict, list)):
        if depth >= FIT_DEPTH or budget < 2:
            return _NOTHING, 0, True
        return (_fit_dict if isinstance(value, dict) else _fit_list)(value, budget, depth + 1)
    size = len(json.dumps(value)) if value is None or isinstance(value, (bool, int, float)) else budget + 1
    return (value, size, False) if size <= budget else (_NOTHING, 0, True)


def _text_size(text: str) -> int:
    return len(json.dumps(text)) + LINE_BYTES * text.count("\n")


def _fit_text(text: str, budget: int) -> tuple:
    if budget < 2:
        return _NOTHING, 0, True
    cut = len(text) > budget - 2
    text = text[: budget - 2]
    size = _text_size(text)
    for _ in range(20):  # escapes and line breaks take more than a byte: shrink by the ratio until it fits
        if size <= budget:
            return text, size, cut
        text, cut = text[: len(text) * (budget - 2) // size], True
        size = _text_size(text)
    return (text, size, True) if size <= budget else ("", 2, True)


def _fit_list(items: list, budget: int, depth: int) -> tuple:
    kept, used, cut = [], 2, False
    for item in items:
        got, size, part = fit(item, budget - used - 1, depth)
        if got is _NOTHING:  # no room left: the items after it are cut
            return kept, used, True
        kept.append(got)
        used, cut = used + size + 1, cut or part
    return kept, used, cut


def _fit_dict(items: dict, budget: int, depth: int) -> tuple:
    kept, used, cut = {}, 2, False
    for key, value in items.items():
        key_size = _text_size(key) + 2 if isinstance(key, str) and len(key) < budget else budget
        got, size, part = fit(value, budget - used - key_size, depth)
        if got is _NOTHING:
            cut = True
            continue
        kept[key] = got
        used, cut = used + key_size + size, cut or part
    return kept, used, cut


def _rough_size(value) -> int:
    """About how many bytes ``value`` takes as JSON (its strings and items, escapes not counted)."""
    total, stack = 0, [iter((value,))]
    while stack:
        item = next(stack[-1], _NOTHING)
        if item is _NOTHING:
            stack.pop()
        elif isinstance(item, str):
            total += len(item) + 3
        elif isinstance(item, dict):
            total += 2
            stack.append(itertools.chain.from_iterable(item.items()))
        elif isinstance(item, list):
            total += 2
            stack.append(iter(item))
        else:
            total += 4
    return total


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _clean(kind: str, content: dict) -> dict:
    """The fields nbformat keeps of an output message, in the order they are kept when they do not all fit."""
    if kind == "stream":
        return {"name": "stderr" if content.get("name") == "stderr" else "stdout", "text": _text(content.get("text"))}
    if kind == "error":
        trace = content.get("traceback")
        return {"ename": _text(content.get("ename"))[:200], "evalue": _text(content.get("evalue")),
                "traceback": trace if isinstance(trace, list) else []}
    data, metadata = content.get("data"), content.get("metadata")
    clean = {"data": data if isinstance(data, dict) else {}, "metadata": metadata if isinstance(metadata, dict) else {}}
    if kind == "execute_result":
        count = content.get("execution_count")
        clean["execution_count"] = count if type(count) is int else None
    return clean


def _complete(kind: str, kept: dict, display_id: str | None) -> dict:
    """What was kept of ``_clean``'s fields, with the ones that did not fit back, empty."""
    if kind == "stream":
        content = {"name": kept.get("name", "stdout"), "text": kept.get("text", "")}
    elif kind == "error":
        content = {"ename": kept.get("ename", ""), "evalue": kept.get("evalue", ""),
                   "traceback": [line for line in kept.get("traceback", []) if isinstance(line, str)]}
    else:
        content = {"data": kept.get("data", {}), "metadata": kept.get("metadata", {})}
        if kind == "execute_result":
            content["execution_count"] = kept.get("execution_count")
    if display_id:
        content["transient"] = {"display_id": display_id}
    return content


def _display_id(kind: str, content: dict) -> str | None:
    transient = content.get("transient")
    found = transient.get("display_id") if isinstance(transient, dict) else None
    keeps = kind in ("display_data", "execute_result", "update_display_data")
    return found if keeps and isinstance(found, str) and len(found) <= 200 else None


def _message(msg: dict, kind: str, content: dict) -> dict:
    """A message as nbclient reads it, with only ``content`` and the header's date of the kernel's."""
    header = msg.get("header") if isinstance(msg.get("header"), dict) else {}
    date = header.get("date") if isinstance(header.get("date"), datetime.datetime) else None
    return {"msg_type": kind, "header": {"msg_type": kind, "date": date},
            "parent_header": msg.get("parent_header") or {}, "metadata": {}, "content": content, "buffers": []}


def _release_memory() -> None:
    """Give what this process freed back to the system (glibc keeps freed heap memory for later otherwise)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


# --------------------------------------------------------------------------- what ZMQ holds before the caps

LOST_GRACE = 2.0  # seconds from a lost connection to stopping the kernel: a kernel that died has exited by then
WATCH_INTERVAL_MS = 20
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE


class _Watch:
    """While a cell or a hidden test runs, watches this process's memory and the kernel's connections.

    A kernel can make this process hold more than any output cap: ZMQ receives a message whole before any hook
    sees it, queues messages, and sets no limit on the number of parts of one message. Each connection refuses
    a part over the manager's ``max_message_bytes`` by disconnecting (ZMQ_MAXMSGSIZE; ZMQ does not reconnect
    after that). While armed, the watch stops the kernel when this process has grown by more than ``margin``
    bytes, or when a connection was lost and the kernel still runs: its launcher gets SIGTERM and kills it,
    the connections close and ZMQ frees what it held. ``reason`` says why, for the cell's message.
    """

    def __init__(self, km, kc, margin: int, max_message: int):
        self.km, self.margin, self.max_message = km, margin, max_message
        self.reason = ""
        self._armed, self._baseline, self._lost = False, 0, {}
        self._sockets = []
        for name in ("iopub", "shell", "stdin"):
            sock = getattr(getattr(kc, f"_{name}_channel", None), "socket", None)
            if sock is not None:
                addr = f"inproc://lstm-watch-{uuid.uuid4().hex}"
                sock.monitor(addr, zmq.EVENT_DISCONNECTED)
                self._sockets.append((name, sock, addr))
        self._context = zmq.Context.shadow(kc.context.underlying)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def armed(self):
        self._baseline, self._lost, self._armed = _rss(), {}, True
        try:
            yield
        finally:
            self._armed = False

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        for _name, sock, _addr in self._sockets:
            with contextlib.suppress(zmq.ZMQError):
                sock.disable_monitor()

    def _run(self) -> None:
        monitors, poller = {}, zmq.Poller()
        for name, _sock, addr in self._sockets:
            monitor = self._context.socket(zmq.PAIR)
            monitor.connect(addr)
            poller.register(monitor, zmq.POLLIN)
            monitors[monitor] = name
        try:
            while not self._done.is_set():
                for monitor, _event in poller.poll(WATCH_INTERVAL_MS):
                    with contextlib.suppress(zmq.ZMQError):
                        monitor.recv_multipart(zmq.NOBLOCK)
                        if self._armed:
                            self._lost.setdefault(monitors[monitor], time.monotonic())
                if self._armed:
                    self._check()
        finally:
            for monitor in monitors:
                monitor.close(linger=0)

    def _check(self) -> None:
        if _rss() > self._baseline + self.margin:
            self._stop(f"while this cell ran, what the kernel sent made the grader's process grow by more than "
                       f"{self.margin >> 20} MB, its limit")
        elif (self._lost and len(self._lost) < len(self._sockets)  # all of them: the kernel died, nbclient sees it
              and time.monotonic() - min(self._lost.values()) > LOST_GRACE and self._launcher() is not None):
            self._stop(f"this cell sent the grader a message of more than {_mb(self.max_message)}, the most one "
                       "message may carry (the grader keeps far less of a cell's output anyway)")

    def _launcher(self):
        """The kernel's launcher (``autograder/host/sandbox.py``) while it runs, else None."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return process if process is not None and process.poll() is None else None

    def _stop(self, why: str) -> None:
        self.reason, self._armed = why, False
        launcher = self._launcher()
        if launcher is not None:
            with contextlib.suppress(OSError):
                launcher.send_signal(signal.SIGTERM)  # it kills the kernel, logs that the grader stopped it, exits


def _bounded_context(max_message_bytes: int | None, queue: int | None) -> zmq.asyncio.Context:
    """A ZMQ context whose sockets refuse a message part over ``max_message_bytes`` and queue ``queue`` messages
    (None: ZMQ's default)."""
    context = zmq.asyncio.Context()
    for option, value in ((zmq.MAXMSGSIZE, max_message_bytes), (zmq.RCVHWM, queue)):
        if value is not None:
            context.setsockopt(option, value)
    return context


class BoundedKernelClient(AsyncKernelClient):
    """A kernel client whose sockets have its manager's limits (``BoundedKernelManager``)."""

    def _context_default(self) -> zmq.asyncio.Context:
        self._created_context = True
        return _bounded_context(getattr(self.parent, "max_message_bytes", None),
                                getattr(self.parent, "receive_queue", None))


class BoundedKernelManager(AsyncKernelManager):
    """A kernel manager whose sockets, and its clients', refuse big message parts and queue few messages; the
    executor sets the limits (``ResilientExecute.max_message_bytes``, ``receive_queue``)."""

    max_message_bytes = Integer(None, allow_none=True, help="Largest message part a socket takes (None: any)")
    receive_queue = Integer(None, allow_none=True, help="Messages queued on each socket (None: ZMQ's default)")
    client_factory = Type(BoundedKernelClient, klass=AsyncKernelClient)

    @default("context")
    def _context_default(self) -> zmq.asyncio.Context:
        self._created_context = True
        return _bounded_context(self.max_message_bytes, self.receive_queue)


@contextlib.contextmanager
def _relayed(limit: int):
    """A pipe for the kernel's stdout and stderr, whose start and end a thread copies to this process's stderr."""
    read_fd, write_fd = os.pipe()
    thread = threading.Thread(target=_relay, args=(read_fd, limit), daemon=True)
    thread.start()
    try:
        yield write_fd
    finally:
        os.close(write_fd)
        thread.join(timeout=2)


def _relay(fd: int, limit: int) -> None:
    """What arrives on ``fd`` to stderr: its first ``limit`` bytes, how many were left out, its last ``limit``."""
    head, tail, skipped = 0, bytearray(), 0
    with open(fd, "rb", buffering=0) as stream:
        while chunk := stream.read(65536):
            if head < limit:
                first = chunk[: limit - head]
                _to_stderr(first)
                head, chunk = head + len(first), chunk[len(first):]
            tail += chunk
            if len(tail) > limit:
                skipped += len(tail) - limit
                del tail[: len(tail) - limit]
    if skipped:
        _to_stderr(f"\n[grader: {skipped} bytes the kernel wrote to its stdout and stderr were dropped]\n".encode())
    _to_stderr(bytes(tail))


def _to_stderr(data: bytes) -> None:
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(2, view):]


class MarkGraded(NbGraderPreprocessor):
    """Last in line: tells the batch that nbgrader got all the way through (grades saved)."""

    def preprocess(self, nb, resources):
        gradelog.append(log_path(resources), {"kind": "graded"})
        return nb, resources
