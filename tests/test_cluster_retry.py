"""A worker lost mid-task, on a scheduler that retries (Dask's default): the task runs again on another
worker and the student is graded as if nothing had happened. (tests/test_cluster.py turns retries off to
test what happens when a task is lost for good.)"""

import os
import subprocess
import time

from corpus import LIMITS, ROOT, VENV, A
from test_cluster import _submit, _totals, _workers_of

from autograder.host import localcluster
from autograder.host.course import copy_course


def _executing(client, workers):
    found = client.run(lambda dask_worker: [str(t.key) for t in dask_worker.state.executing], workers=workers,
                       on_error="return")
    return {w: keys for w, keys in found.items() if isinstance(keys, list) and keys}


def test_a_task_whose_worker_dies_is_retried_elsewhere_and_graded_in_full(tmp_path_factory):
    from distributed import Client

    course = copy_course(tmp_path_factory.mktemp("retried"))
    students = {"reference": 13.0, "planted_bug": 7.0}
    _submit(course, students)
    with localcluster.LocalCluster({"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1", **LIMITS}) as c:
        c.start_scheduler()
        c.start_worker("w1")
        c.start_worker("w2")
        names = c.wait_for(2)
        by_address = {address: name for name, address in names.items()}
        env = {**os.environ, **LIMITS, "COURSE_ROOT": str(course.root), "CLUSTER": c.address}
        output = tmp_path_factory.mktemp("retried-out") / "make.txt"
        proc = subprocess.Popen(["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-C",
                                 str(course.root), "-o", f"{VENV}/.ready", "autograde", f"VENV={VENV}", "JOBS=2",
                                 "DEVICE=cpu"], env=env, stdout=output.open("w"), stderr=subprocess.STDOUT, text=True)
        killed = None
        try:
            with Client(c.address, timeout=30) as client:
                deadline = time.monotonic() + 300
                while killed is None and time.monotonic() < deadline and proc.poll() is None:
                    busy = [w for w, keys in _executing(client, list(names.values())).items()
                            if any(k.startswith("lstm-grade-") for k in keys)]
                    if busy:
                        time.sleep(3)  # mid-task: its kernel is running
                        killed = by_address[busy[0]]
                        c.kill(killed)
                    time.sleep(0.3)
            proc.wait(timeout=900)
            out = output.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert killed, "no worker ever ran a task"
    assert proc.returncode == 0, out
    assert "lost" not in out, out
    assert _totals(course) == students, out
    # the killed worker finished nothing (it was killed in its first task): the survivor graded everyone,
    # the retried task included
    survivor = names["w2" if killed == "w1" else "w1"]
    assert _workers_of(course) == {student: survivor for student in students}, (_workers_of(course), out)
    for student in students:
        text = course.notebook("autograded", A, student).read_text()
        assert "could not be graded" not in text
