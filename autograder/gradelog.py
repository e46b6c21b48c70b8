"""The grading log: one JSON-lines file per (assignment, student), one writer, one vocabulary.

``<root>/<assignment>/<student>.jsonl``; ``root`` is the setting ``grading_log``, which the batch sets for every
process it starts. Three processes append to it, all through ``append``: the launcher (what it saw of the
kernel, and what the kernel reported on its channel, marked ``"from": "kernel"``), the grader's executor
(verdict-side events, and each hidden test's ``verdict`` with its bug id) and the batch (staging, failures).
``describe`` words each kind for the report; ``verdicts`` reads the last grading run's verdicts.
"""

import json
import os
import threading
import time

from .settings import load

_lock = threading.Lock()

# kind -> (is it an attempt on the grader or the sandbox?, how the report words it)
KINDS = {
    "start": (False, "kernel started: {detail}"),
    "exit": (False, "kernel {detail}"),
    "fork-failed": (False, "the fork server could not start the kernel ({detail}): a fresh Python did"),
    "dropped": (False, "not given to the kernel: {detail}"),
    "boot": (False, "kernel booted (torch {torch}, {device})"),
    "graded": (False, "grades saved"),
    "grading": (False, "the executor started grading the notebook"),
    "verdict": (False, "{cell}: {bug}"),
    "graded-on": (False, "graded on Dask worker {worker}"),
    "cell-skipped": (False, "cell {cell} skipped: {detail}"),
    "gave-up": (False, "gave up after repeated kernel failures: {detail}"),
    "staging-failed": (False, "staging failed, graded as the unanswered release: {detail}"),
    "grading-failed": (False, "grading failed: {detail}"),
    "attempt": (True, "ATTEMPT (reported by the kernel): {what} ({event}) in {code}"),
    "refused": (True, "REFUSED to grade: loaded from the submission's folder before any cell ran: {modules}"),
    "garbled": (True, "GARBLED record on the kernel's channel: {detail}"),
    "modes-active": (True, "TORCH MODES left active by the submission ({modes}) during {during}"),
    "probe-silent": (True, "NO ANSWER from the kernel's probe in {cell}: {detail}"),
    "ready-made": (True, "ready-made LSTM called in {cell}: {detail}"),
    "ready-made-source": (True, "ready-made LSTM in the submitted source: {detail}"),
    "evasion-source": (True, "EVASION in the submitted source: {detail}"),
    "forbidden-source": (False, "forbidden call in the submitted source: {detail}"),
    "withheld": (False, "{cell}: points withheld ({rule}, {finding}); passed on its own: {passed}"),
}
ATTEMPTS = frozenset(kind for kind, (attempt, _) in KINDS.items() if attempt)


def path_for(assignment: str, student: str, root: str | None = None) -> str | None:
    root = root if root is not None else load().grading_log
    if not root or not assignment or not student:
        return None
    return os.path.join(root, assignment, f"{student}.jsonl")


def append(path, record: dict) -> None:
    if not path:
        return
    line = json.dumps({"time": round(time.time(), 3), **record}, sort_keys=True, default=str)
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with _lock, open(path, "a") as fh:
        fh.write(line + "\n")


def read(path) -> list[dict]:
    if not path or not os.path.exists(path):
        return []
    records = []
    with open(path) as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def describe(record: dict) -> str:
    kind = str(record.get("kind"))
    template = KINDS.get(kind, (False, kind + ": {detail}"))[1]

    class Fields(dict):
        def __missing__(self, key):
            return "?"

    return template.format_map(Fields({k: str(v)[:300] for k, v in record.items()}))


def verdicts(path) -> dict[str, dict]:
    """grade_id -> the ``verdict`` record of the last grading run (after the last ``grading`` record). Records
    the kernel reported (``"from"``) are never verdicts."""
    found: dict[str, dict] = {}
    for record in read(path):
        if "from" in record:
            continue
        if record.get("kind") == "grading":
            found = {}
        elif record.get("kind") == "verdict" and isinstance(record.get("cell"), str):
            found[record["cell"]] = record
    return found
