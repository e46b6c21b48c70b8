"""nbgrader preprocessors for grading submissions that may be broken or hostile.

``ResilientExecute`` runs the notebook like nbgrader's Execute, with a budget for the whole notebook,
and survives what student code does to its kernel: a cell that kills the kernel (``os._exit``,
``os.abort``, out of memory) or keeps it busy after being interrupted is marked with a message, and
the notebook runs again in a fresh kernel without that cell, so the rest of the work still earns
its points. Output is capped per cell.

``VerifyHiddenTests`` accepts a hidden-test cell's clean run only if the grading kernel's guard sent
a signed ``pass`` record for every hidden test the cell calls (``autograder/guard.py``); otherwise the
cell gets an error and scores zero. A submission that swallows errors or rewrites the test cells
therefore gains nothing.
"""

import ast
import json
import os
import time
from queue import Empty

from nbclient.client import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade
from traitlets import Integer

from .nbgrader_ext import HIDDEN_BEGIN, BudgetedExecute

LOG_ENV = "LSTM_GRADING_LOG"  # a directory: <assignment>/<student>.jsonl (autograder/sandbox.py writes them)


def log_path(resources) -> str | None:
    """The grading log of the notebook nbgrader is working on, if grading through the batch."""
    root = os.environ.get(LOG_ENV)
    info = (resources or {}).get("nbgrader", {})
    if not root or not info.get("student") or not info.get("assignment"):
        return None
    return os.path.join(root, info["assignment"], f"{info['student']}.jsonl")


def read_log(path: str | None) -> list[dict]:
    if not path or not os.path.exists(path):
        return []
    records = []
    with open(path) as fh:
        for line in fh:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def append_log(record: dict, path: str | None) -> None:
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"time": round(time.time(), 3), **record}, sort_keys=True) + "\n")


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
        self._deadline = time.monotonic() + self.notebook_budget
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
                                         f"{os.environ.get('LSTM_KERNEL_MEMORY_MB', 'set by the grader')} MB), "
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
                append_log({"kind": "cell-skipped", "cell": culprit, "detail": reason}, log_path(resources))
                failure = reason
                if time.monotonic() > self._deadline:
                    break
        for index, (reason, outputs) in skipped.items():
            nb.cells[index].outputs = outputs + [error_output(
                "KernelStopped", f"{reason}. The grader restarted the kernel and ran the rest of the notebook "
                "without this cell.")]
        if failure is not None and len(skipped) > self.max_restarts:
            append_log({"kind": "gave-up", "detail": failure}, log_path(resources))
        for index, dropped in self._dropped.items():
            nb.cells[index].outputs.append(NotebookNode(
                output_type="stream", name="stdout",
                text=f"\n[grader: {dropped} more bytes of output from this cell were dropped]\n"))
        self.set_widgets_metadata()
        return self.nb, self.resources

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
    for record in reversed(read_log(path)):
        if record.get("kind") == "exit" and not record.get("requested"):
            return str(record.get("detail", "it exited"))
    return "it exited (sys.exit in a thread, os._exit, a crash, or the memory limit)"


# --------------------------------------------------------------------------- verification


def hidden_tests_called(source: str) -> list[str]:
    """Qualified names (``autograder.checks.m.f``) of the hidden tests a grading cell calls."""
    hidden = []
    inside = False
    for line in source.splitlines():
        if HIDDEN_BEGIN in line:
            inside = True
            continue
        if "### END HIDDEN TESTS" in line:
            inside = False
            continue
        if inside:
            hidden.append(line)
    try:
        tree = ast.parse("\n".join(hidden))
    except SyntaxError:
        return []
    modules: dict[str, str] = {}
    functions: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if node.module == "autograder.checks":
                    modules[alias.asname or alias.name] = full
                elif node.module.startswith("autograder.checks."):
                    functions[alias.asname or alias.name] = full
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("autograder.checks.") and alias.asname:
                    modules[alias.asname] = alias.name
    called = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in modules:
            called.append(f"{modules[f.value.id]}.{f.attr}")
        elif isinstance(f, ast.Name) and f.id in functions:
            called.append(functions[f.id])
    return called


class VerifyHiddenTests(NbGraderPreprocessor):
    """Zero for hidden-test cells that ran clean but whose tests the kernel's guard did not confirm."""

    def preprocess(self, nb, resources):
        path = log_path(resources)
        if not path:
            return nb, resources  # not graded through the sandboxed kernel: nothing to verify against
        records = read_log(path)
        last_start = max((k for k, r in enumerate(records) if r.get("kind") == "start"), default=-1)
        final = records[last_start + 1:]
        booted = any(r.get("kind") == "boot" and r.get("verified") for r in final)
        passed = {r.get("test") for r in final if r.get("kind") == "pass" and r.get("verified")}
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not is_grade(cell) or HIDDEN_BEGIN not in cell.source:
                continue
            if any(o.get("output_type") == "error" for o in cell.outputs):
                continue
            expected = hidden_tests_called(cell.source)
            missing = [t for t in expected if t not in passed]
            if not missing:
                continue
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", index)
            if not booted:
                text = ("the grading kernel's guard did not start, so this test could not be confirmed "
                        "(a grader problem: tell your instructor).")
            else:
                text = ("this test cell ran without an error, but the grader received no confirmation that "
                        f"{', '.join(m.rsplit('.', 1)[1] for m in missing)} passed. Code in the notebook "
                        "changed how cells run or how errors are shown; such a test earns no points.")
            cell.outputs.append(error_output("GradingFailure", text))
            append_log({"kind": "unverified", "cell": grade_id, "missing": missing, "booted": booted}, path)
        return nb, resources


class MarkGraded(NbGraderPreprocessor):
    """Last in line: tells the batch that nbgrader got all the way through (grades saved)."""

    def preprocess(self, nb, resources):
        append_log({"kind": "graded"}, log_path(resources))
        return nb, resources
