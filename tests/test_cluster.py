"""A class graded on a real Dask cluster (`dask scheduler` and `dask worker` processes on 127.0.0.1) through
`make autograde CLUSTER=...`: the same scores and messages as serial grading, cell by cell; a worker with
another release refused before it grades anything; GPU tasks only on a worker with the GPU resource; a
PostgreSQL gradebook; a worker killed mid-batch still leaves every student a row."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from corpus import LIMITS, ROOT, VENV, A, environ, make
from test_postgres import postgres  # noqa: F401 (a fixture: the throwaway PostgreSQL server)

from autograder.demo import PLANTED
from autograder.host import cluster, localcluster, report
from autograder.host.batch import grade
from autograder.host.course import Course, copy_course
from autograder.host.submissions import reference_submission, submit
from autograder.settings import Settings

SEED = "20261201"
TOTALS = {"reference": 13.0, "planted_bug": 7.0, "broken": 0.0}


def _submit(course, students=TOTALS):
    course.nbgrader("generate_assignment", A, "--force")
    _hand_in(course, students)


def _hand_in(course, students=TOTALS):
    """The students' notebooks in ``submitted/`` of a released course."""
    for student in students:
        if student == "broken":
            folder = course.dir("submitted") / student / A
            folder.mkdir(parents=True)
            (folder / f"{A}.ipynb").write_text('{"cells": [')  # not JSON: graded as the release, with a note
        elif student == "planted_bug":
            submit(course, student, A, reference_submission(course, A, PLANTED[A]))
        else:
            submit(course, student, A, reference_submission(course, A))


def _totals(course):
    totals = {}
    for r in report.scores(course):
        totals[r.student] = totals.get(r.student, 0.0) + r.score
    return totals


def _workers_of(course):
    """student -> the Dask worker that graded it (the coordinator logs it)."""
    out = {}
    for log in (course.dir("autograded") / ".grading" / "logs" / A).glob("*.jsonl"):
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if record.get("kind") == "graded-on":
                out[log.stem] = record["worker"]
    return out


def _cells(course, student):
    """What every grading cell printed or raised, and its score, from the graded notebook."""
    nb = json.loads(course.notebook("autograded", A, student).read_text())
    out = {}
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and meta.get("grade"):
            streams = {}
            for o in cell["outputs"]:
                if o["output_type"] == "stream":
                    streams[o["name"]] = streams.get(o["name"], "") + "".join(o["text"])
            out[meta["grade_id"]] = [streams, [(o.get("ename"), o.get("evalue")) for o in cell["outputs"]
                                               if o["output_type"] == "error"]]
    return out


def executing(client, workers) -> dict:
    """address -> the keys of the tasks each of ``workers`` is running (those running any)."""
    found = client.run(lambda dask_worker: [str(t.key) for t in dask_worker.state.executing], workers=workers,
                       on_error="return")
    return {w: keys for w, keys in found.items() if isinstance(keys, list) and keys}


def autograde_killing(local, course, tmp_path_factory, pick) -> tuple:
    """`make autograde` on the LocalCluster ``local``, in the background; as soon as ``pick`` (given the names of
    the workers running a grading task) says yes, the first of them is killed with SIGKILL, 3 s into its task
    (its kernel running). Returns (the name killed, or None; make's exit code; what make printed)."""
    from distributed import Client

    env = {**os.environ, **LIMITS, "COURSE_ROOT": str(course.root), "CLUSTER": local.address}
    output = tmp_path_factory.mktemp("autograde-out") / "make.txt"
    proc = subprocess.Popen(["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-C", str(course.root),
                             "-o", f"{VENV}/.ready", "autograde", f"VENV={VENV}", "JOBS=2", "DEVICE=cpu"],
                            env=env, stdout=output.open("w"), stderr=subprocess.STDOUT, text=True)
    killed, by_address = None, {address: name for name, address in local.names.items()}
    try:
        with Client(local.address, timeout=30) as client:
            deadline = time.monotonic() + 300
            while killed is None and time.monotonic() < deadline and proc.poll() is None:
                busy = sorted(by_address[w] for w, keys in executing(client, list(by_address)).items()
                              if any(k.startswith("lstm-grade-") for k in keys))
                if busy and pick(busy):
                    time.sleep(3)
                    killed = next(name for name in busy if pick([name]))
                    local.kill(killed)
                time.sleep(0.3)
        proc.wait(timeout=900)
        return killed, proc.returncode, output.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


def _autograde(course, address, env=None, timeout=900):
    return make(course, "autograde", env={"CLUSTER": address, **(env or {})}, timeout=timeout)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory, released):
    """A scheduler (a task whose worker dies is not retried: the fallback path is what is tested) and two
    workers, w1 with a (fake) GPU resource; w3, started from a course whose release differs, is refused."""
    other = released(tmp_path_factory.mktemp("other-release"), A)
    nb = nbformat.read(other.notebook("notebooks", A), as_version=4)
    nb.cells[0].source += "\n\nAn edited sentence: this release is not the class's."
    nbformat.write(nb, other.notebook("notebooks", A))
    w1_tmp = tempfile.mkdtemp(prefix="lstm-w1-")  # short: the kernels' unix sockets live under it
    with localcluster.LocalCluster({"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0", **LIMITS}) as c:
        c.start_scheduler()
        c.start_worker("w1", "GPU=1", env={"TMPDIR": w1_tmp})
        c.w1_tmp = Path(w1_tmp)
        c.start_worker("w2")
        c.start_worker("w3", env={"COURSE_ROOT": str(other.root)})
        c.names = c.wait_for(3)
        yield c
    shutil.rmtree(w1_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def serial_and_clustered(dask_cluster, tmp_path_factory, released):
    serial = released(tmp_path_factory.mktemp("serial"), A)
    clustered = released(tmp_path_factory.mktemp("clustered"), A)
    for course in (serial, clustered):
        _hand_in(course)
    with environ(**LIMITS, LSTM_GRADER_SEED=SEED):
        one = grade(serial, A, jobs=1)
    done = _autograde(clustered, dask_cluster.address, {"LSTM_GRADER_SEED": SEED})
    return serial, clustered, one, done


def test_the_clustered_run_gives_the_serial_scores_and_messages_cell_by_cell(serial_and_clustered):
    serial, clustered, one, done = serial_and_clustered
    assert one.returncode == 0, one.stdout + one.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    assert "on 2 worker(s) of tcp://127.0.0.1:" in done.stdout, done.stdout
    assert _totals(clustered) == TOTALS
    rows = {(r.student, r.grade_id): r.score for r in report.scores(serial)}
    assert rows == {(r.student, r.grade_id): r.score for r in report.scores(clustered)}
    for student in TOTALS:
        assert _cells(serial, student) == _cells(clustered, student), student
    assert "is not valid JSON" in clustered.notebook("autograded", A, "broken").read_text()
    log = (clustered.dir("autograded") / ".grading" / "logs" / A / "reference.jsonl").read_text()
    assert '"kind": "graded"' in log and '"kind": "boot"' in log and '"kind": "graded-on"' in log
    # the coordinator's gradebook and autograded/ are nbgrader's own: feedback is written from them as usual
    feedback = make(clustered, "feedback")
    assert feedback.returncode == 0, feedback.stdout + feedback.stderr
    page = (clustered.dir("feedback") / "planted_bug" / A / f"{A}.html").read_text()
    assert "(Score: 7.0 / 13.0)" in page


def test_a_worker_with_another_release_is_refused_before_grading(dask_cluster, serial_and_clustered):
    _, clustered, _, done = serial_and_clustered
    w3 = dask_cluster.names["w3"]
    refusal = [ln for ln in done.stdout.splitlines() if ln.startswith(f"worker {w3} refused")]
    assert refusal and f"release of {A}:" in refusal[0] and "(the coordinator has " in refusal[0], done.stdout
    assert not any(f"worker {dask_cluster.names[w]} refused" in done.stdout for w in ("w1", "w2"))
    graded_on = _workers_of(clustered)
    assert set(graded_on) == set(TOTALS) and w3 not in graded_on.values()


@pytest.fixture(scope="module")
def gpu_tasks_into_postgres(dask_cluster, postgres, tmp_path_factory):  # noqa: F811
    """One batch for two things: tasks that need the GPU resource, graded into a PostgreSQL gradebook."""
    copy = copy_course(tmp_path_factory.mktemp("pg-cluster"))
    course = Course(root=copy.root, db_url=postgres)
    _submit(course, ["reference", "planted_bug"])
    done = _autograde(course, dask_cluster.address, {"DB_URL": postgres, "CLUSTER_RESOURCES": "GPU=1"})
    return course, done


def test_a_gpu_task_goes_only_to_a_worker_with_the_gpu_resource(dask_cluster, gpu_tasks_into_postgres):
    course, done = gpu_tasks_into_postgres
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(_workers_of(course)) == {"reference", "planted_bug"}
    assert set(_workers_of(course).values()) == {dask_cluster.names["w1"]}, _workers_of(course)
    # a resource no worker has: refused before grading
    from distributed import Client

    with Client(dask_cluster.address, timeout=30) as client:
        accepted, refused = cluster.preflight(client, [A], Settings(cluster_resources="TPU=1"))
    assert accepted == [] and "no accepted worker has the resources the tasks need (TPU=1" in refused[-1]


def test_a_postgres_gradebook_works_with_the_cluster(gpu_tasks_into_postgres):
    course, done = gpu_tasks_into_postgres
    assert done.returncode == 0, done.stdout + done.stderr
    assert course.db.startswith("postgresql+psycopg://")
    assert _totals(course) == {"reference": 13.0, "planted_bug": 7.0}


def test_device_cuda_needs_cuda_on_every_worker(dask_cluster):
    """DEVICE=cuda: a worker without CUDA is refused by name (this machine has none)."""
    from distributed import Client

    with Client(dask_cluster.address, timeout=30) as client:
        accepted, refused = cluster.preflight(client, [A], Settings(device="cuda"))
    assert accepted == []
    assert any(ln.startswith(f"worker {dask_cluster.names['w2']} refused: CUDA: no CUDA device") for ln in refused)


def test_a_task_past_its_wall_clock_limit_is_cancelled_and_graded_as_the_release(dask_cluster, tmp_path_factory):
    """CLUSTER_TASK_TIMEOUT=1: every first task runs longer (nbgrader alone starts slower), so it is cancelled
    and the submission graded as the unanswered release (under the default limit), with a note."""
    course = copy_course(tmp_path_factory.mktemp("overdue"))
    _submit(course, ["reference"])
    done = _autograde(course, dask_cluster.address, {"CLUSTER_TASK_TIMEOUT": "1"})
    assert done.returncode != 0, done.stdout  # the exit code tells
    assert f"{A} / reference: it ran past 1 s on tcp://127.0.0.1:" in done.stdout, done.stdout
    assert f"{A} / reference: lost" in done.stdout, done.stdout
    assert _totals(course) == {"reference": 0.0}
    text = course.notebook("autograded", A, "reference").read_text()
    assert "Your submission could not be graded: grading it failed (it ran past 1 s on" in text


def test_a_worker_killed_mid_batch_leaves_every_student_a_row(dask_cluster, tmp_path_factory):
    """Last: it kills w2. Its task is not retried (allowed-failures 0): graded as the unanswered release, with
    a note; the batch ends with a row for everyone and an exit code saying some were lost."""
    from distributed import Client

    course = copy_course(tmp_path_factory.mktemp("killed"))
    students = ["s1", "s2"]
    course.nbgrader("generate_assignment", A, "--force")
    for s in students:
        submit(course, s, A, reference_submission(course, A))
    with Client(dask_cluster.address, timeout=30) as client:  # a cancelled task of an earlier test may still run
        deadline = time.monotonic() + 300
        while executing(client, list(dask_cluster.names.values())) and time.monotonic() < deadline:
            time.sleep(1)
    killed, returncode, out = autograde_killing(dask_cluster, course, tmp_path_factory, lambda busy: "w2" in busy)
    assert killed == "w2", "w2 never ran a task"
    assert returncode != 0, out  # the exit code tells: some submissions were lost
    lost = sorted(set(re.findall(r"01_lstm_cell / (s\d): the workers grading it were lost", out)))
    assert lost, out
    totals = _totals(course)
    assert set(totals) == set(students), out  # a row for every student
    for s in students:
        text = course.notebook("autograded", A, s).read_text()
        if s in lost:
            assert totals[s] == 0.0 and f"{A} / {s}: lost" in out
            assert "Your submission could not be graded: grading it failed (the workers grading it were lost" in text
        else:
            assert totals[s] == 13.0, out
    assert _workers_of(course).keys() == set(students)


def test_a_closed_worker_leaves_nothing_in_its_temporary_folder(dask_cluster, gpu_tasks_into_postgres):
    """After w1 (which graded the GPU tasks) is stopped with SIGTERM, as an operator stops one, its /tmp holds
    neither the assignment it generated for its tasks nor any task's folder."""
    assert list(dask_cluster.w1_tmp.glob("lstm-template-*")), "w1 generated no template: nothing to check"
    dask_cluster.close("w1")
    assert sorted(p.name for p in dask_cluster.w1_tmp.iterdir()) == []


def test_a_result_names_files_only_inside_its_folder(tmp_path):
    from autograder.host.worker import write_folder

    for name in ("../escape.txt", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(ValueError):
            write_folder(tmp_path / "out", {name: b"x"})
    write_folder(tmp_path / "out", {"data/ok.txt": b"x"})
    assert (tmp_path / "out" / "data" / "ok.txt").read_bytes() == b"x"
    assert not (tmp_path / "escape.txt").exists()


def test_what_a_task_needs_of_a_worker():
    assert cluster.parse_resources("GPU=1, MEM=2e9") == {"GPU": 1.0, "MEM": 2e9}
    assert cluster.task_resources(Settings(device="cuda")) == {"GPU": 1.0}
    assert cluster.task_resources(Settings(device="cpu")) == {}
    assert cluster.task_resources(Settings(device="cpu", cluster_resources="GPU=2")) == {"GPU": 2.0}
    expected = {"torch": "2.13.0", "release of x": "abc", "CUDA": "1 device(s)"}
    assert cluster.differences(expected, {"torch": "2.13.0", "release of x": "abc", "CUDA": "2 device(s)"}) == []
    diff = cluster.differences(expected, {"torch": "2.12.0", "release of x": "", "CUDA": "no CUDA device"})
    assert diff == ["torch: 2.12.0 (the coordinator has 2.13.0)", "release of x: missing (the coordinator has abc)",
                    "CUDA: no CUDA device"]


def test_cluster_comes_from_CLUSTER_else_the_standard_dask_variable():
    from autograder.settings import from_environment

    assert from_environment({"DASK_SCHEDULER_ADDRESS": "tcp://a:8786"}).cluster == "tcp://a:8786"
    assert from_environment({"CLUSTER": "tcp://b:8786", "DASK_SCHEDULER_ADDRESS": "tcp://a:8786"}).cluster == \
        "tcp://b:8786"
    assert from_environment({}).cluster == ""
