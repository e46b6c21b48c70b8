"""A worker lost mid-task, on a scheduler that retries (Dask's default): the task runs again on another
worker and the student is graded as if nothing had happened. (tests/test_cluster.py turns retries off to
test what happens when a task is lost for good.)"""

from corpus import LIMITS, A
from test_cluster import _submit, _totals, _workers_of, autograde_killing

from autograder.host import localcluster
from autograder.host.course import copy_course


def test_a_task_whose_worker_dies_is_retried_elsewhere_and_graded_in_full(tmp_path_factory):
    course = copy_course(tmp_path_factory.mktemp("retried"))
    students = {"reference": 13.0, "planted_bug": 7.0}
    _submit(course, students)
    with localcluster.LocalCluster({"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1", **LIMITS}) as c:
        c.start_scheduler()
        c.start_worker("w1")
        c.start_worker("w2")
        c.names = names = c.wait_for(2)
        killed, returncode, out = autograde_killing(c, course, tmp_path_factory, lambda busy: True)
    assert killed, "no worker ever ran a task"
    assert returncode == 0, out
    assert "lost" not in out, out
    assert _totals(course) == students, out
    # the killed worker finished nothing (it was killed in its first task): the survivor graded everyone,
    # the retried task included
    survivor = names["w2" if killed == "w1" else "w1"]
    assert _workers_of(course) == {student: survivor for student in students}, (_workers_of(course), out)
    for student in students:
        text = course.notebook("autograded", A, student).read_text()
        assert "could not be graded" not in text
