"""nbgrader preprocessors for grading submissions that may be broken or hostile.

``ResilientExecute`` runs the notebook like nbgrader's Execute, with a budget for the whole notebook,
and survives what student code does to its kernel: a cell that kills the kernel (``os._exit``,
``os.abort``, out of memory) or keeps it busy after being interrupted is marked with a message, and
the notebook runs again in a fresh kernel without that cell, so the rest of the work still earns
its points. Output is capped per cell.

A grading cell with hidden tests is never run in the kernel: the executor judges it here, in the grader's
process, with the hidden test named like the cell's ``grade_id`` (``autograder.registry``). The test reaches
the student's code through the kernel's probe, one exchange at a time (``KernelLink``), and the executor
writes the verdict into the cell itself; whatever the kernel prints or raises cannot change it. Each verdict
also goes to the grading log as a ``verdict`` record (the cell, passed or not, the failure's bug id and
message): the class report reads those, without grading again.
"""

import json
import threading
import time
import uuid
from queue import Empty

from nbclient.client import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade
from traitlets import Integer

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
    """Execute with a notebook budget, restarts around cells that kill or wedge the kernel, capped output."""

    max_restarts = Integer(3, help="Fresh kernels to try after the kernel dies or stays busy").tag(config=True)
    responsive_timeout = Integer(5, help="Seconds an interrupted kernel has to become responsive").tag(
        config=True)
    max_output_bytes = Integer(2_000_000, help="Output kept per cell; the rest is dropped with a note").tag(
        config=True)

    def preprocess(self, nb, resources=None, km=None):
        if not load_settings().ipc_prefix:  # nbgrader_config.py routes everything else to the batch
            raise RuntimeError("ResilientExecute grades only in the batch's sandboxed kernel, which has the probe: "
                               "grade with `make autograde` or `nbgrader autograde` in the course directory")
        self._deadline = time.monotonic() + self.notebook_budget
        # the hidden tests (and torch) load here while the kernel starts and runs the student's cells
        assignment = (resources or {}).get("nbgrader", {}).get("assignment", "")
        threading.Thread(target=registry.checks_module, args=(assignment,), daemon=True).start()
        self._ready_made = scan.notebook_uses(
            [(k, c.source) for k, c in enumerate(nb.cells) if c.cell_type == "code" and _student_cell(c)])
        for index, row, line in self._ready_made[:5]:
            gradelog.append(log_path(resources),
                            {"kind": "ready-made-source", "detail": f"cell {index}, line {row}: {line}"})
        gradelog.append(log_path(resources), {"kind": "grading"})  # the verdicts after this one are this run's
        skipped: dict[int, tuple] = {}  # cell index -> (why, the outputs it had)
        failures: list[int] = []  # where the kernel died or wedged, in order
        failure = None
        for _attempt in range(self.max_restarts + 1):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code" and index not in skipped:
                    cell.outputs = []
                    cell.execution_count = None
            self._output_bytes: dict[int, int] = {}
            self._dropped: dict[int, int] = {}
            NotebookClient.__init__(self, nb, km)
            self.reset_execution_trackers()
            self._check_assign_resources(resources)
            current = None
            try:
                with self.setup_kernel():
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
                        current = index
                        try:
                            if judged_here(cell):
                                self.judge(cell, resources, index)
                            else:
                                self.preprocess_cell(cell, resources, index)
                        except CellTimeoutError:  # no reply, or no end of output, after the interrupt
                            if not any(o.get("ename") == "CellTimeoutError" for o in cell.outputs):
                                cell.outputs.append(error_output(
                                    "CellTimeoutError", f"this cell ran past its time limit ({self.timeout} s)"))
                        if _timed_out(cell) and not self._responsive():
                            raise _Stuck("this cell ran past its time limit and the kernel stayed busy after "
                                         "being interrupted (an infinite loop that ignores KeyboardInterrupt?)")
                        if _out_of_memory(cell):
                            raise _Stuck("this cell ran out of memory (the kernel's limit is "
                                         f"{load_settings().memory_mb} MB), "
                                         "and what it allocated would starve the cells after it")
                        current = None
                failure = None
                break
            except (DeadKernelError, _Stuck) as err:
                if current is None:
                    raise
                if isinstance(err, _Stuck):
                    reason = str(err)
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
                failure = reason
                if time.monotonic() > self._deadline:
                    break
        for index, (reason, outputs) in skipped.items():
            nb.cells[index].outputs = outputs + [error_output(
                "KernelStopped", f"{reason}. The grader restarted the kernel and ran the rest of the notebook "
                "without this cell.")]
        if failure is not None and len(skipped) > self.max_restarts:
            gradelog.append(log_path(resources), {"kind": "gave-up", "detail": failure})
        for index, dropped in self._dropped.items():
            nb.cells[index].outputs.append(NotebookNode(
                output_type="stream", name="stdout",
                text=f"\n[grader: {dropped} more bytes of output from this cell were dropped]\n"))
        self.set_widgets_metadata()
        return self.nb, self.resources

    def judge(self, cell, resources, index):
        """Run the cell's hidden test here against the kernel; its verdict becomes the cell's output."""
        from ..checks.harness import GradingFailure, passed_line, take_notes

        info = (resources or {}).get("nbgrader", {})
        assignment = info.get("assignment", "")
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        module = registry.NOTEBOOKS[assignment].checks if assignment in registry.NOTEBOOKS else "grader"
        log = log_path(resources)

        def failed(name, text, bug, named=False):
            cell.outputs = [error_output(name, text)]
            gradelog.append(log, {"kind": "verdict", "cell": grade_id, "passed": False, "bug": bug, "named": named,
                                  "message": f"{name}: {text}"[:600]})

        test = registry.hidden_test(assignment, grade_id)
        cell.outputs = []
        if test is None:
            failed("GradingFailure", f"the grader has no hidden test {grade_id!r} for this notebook (a grader "
                   "problem: tell your instructor).", f"{module}.no_hidden_test")
            return
        if self._ready_made:
            index, row, line = self._ready_made[0]
            failed("GradingFailure", (
                f"PyTorch's ready-made LSTM appears in your code (cell {index + 1}, line {row}: `{line}`). Write the "
                "recurrence yourself: the hidden tests give no points to a notebook that uses it, even in a scratch "
                "cell."), f"{module}.ready_made_lstm", named=True)
            return
        link = KernelLink(self, time.monotonic() + (self._get_timeout(cell) or self.notebook_budget))
        try:
            with using(link):
                test()
            cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=passed_line(test) + "\n")]
            gradelog.append(log, {"kind": "verdict", "cell": grade_id, "passed": True})
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

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] in ("stream", "display_data", "execute_result", "update_display_data"):
            size = len(json.dumps(msg.get("content", {}), default=str))
            used = self._output_bytes.get(cell_index, 0) + size
            self._output_bytes[cell_index] = used
            if used > self.max_output_bytes:
                self._dropped[cell_index] = self._dropped.get(cell_index, 0) + size
                return None
        return super().output(outs, msg, display_id, cell_index)


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
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg.get("msg_type"), msg.get("content", {})
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


class MarkGraded(NbGraderPreprocessor):
    """Last in line: tells the batch that nbgrader got all the way through (grades saved)."""

    def preprocess(self, nb, resources):
        gradelog.append(log_path(resources), {"kind": "graded"})
        return nb, resources
