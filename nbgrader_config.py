"""nbgrader configuration for the course: one assignment per notebook, graded in the pinned kernel."""

import os

from autograder.host import gradebook, nbgrader_route
from autograder.settings import load

c = get_config()  # noqa: F821 (provided by nbgrader)
gradebook.stamp_in_process()
settings = load()
here = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.root = here
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.solution_directory = "solutions"
c.CourseDirectory.db_url = settings.db_url or f"sqlite:///{os.path.join(here, 'gradebook.db')}"
# A named course: PostgreSQL enforces the gradebook's foreign key from assignment to course (SQLite does not).
c.CourseDirectory.course_id = "lstm-course"

# Grade in the course's own kernel, whatever kernelspec a submission claims.
c.Execute.kernel_name = settings.grading_kernel
# `python -m autograder autograde` (autograder/host/batch.py) grades in the sandboxed kernel of
# autograder/host/sandbox.py, which talks to nbgrader over unix sockets in a directory bound into its sandbox.
if settings.ipc_prefix:
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = settings.ipc_prefix
    c.KernelManager.shutdown_wait_time = 1.0  # results are in by then; the launcher drains the kernel's log
# The Validate button (and `nbgrader validate`) also reports a visible check that fails or writes to stderr:
# in a release the grading cells hold no tests, so by grading cells alone every notebook would "pass".
c.Validator.validate_all = True
# One cell may wait for CUDA start-up and a first torch import; the whole notebook has a budget.
c.Execute.timeout = settings.cell_timeout
c.BudgetedExecute.notebook_budget = settings.notebook_budget

# `nbgrader autograde` and the Formgrader's Autograde button grade through the batch of `make autograde`
# (staging, sandbox, probe, verdicts on the grader's side), or refuse with a message; the batch's own nbgrader
# processes run the preprocessors below.
nbgrader_route.install()
c.Autograde.autograde_preprocessors = [
    "autograder.host.execute.ResilientExecute",  # runs the student's cells, judges the grading cells here; restarts
    "autograder.host.nbgrader_ext.DropKnownWarnings",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
    "autograder.host.execute.MarkGraded",  # the batch's sign that this notebook's grades are in the gradebook
]
c.GenerateSolution.preprocessors = [
    "nbgrader.preprocessors.IncludeHeaderFooter",
    "nbgrader.preprocessors.LockCells",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.ClearMarkScheme",
    "autograder.host.nbgrader_ext.BudgetedExecute",
]

# Feedback shows scores, messages and the student's own code; hidden test source stays hidden until
# the instructor runs `make feedback SHOW_HIDDEN_TESTS=1` after the deadline.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "autograder.host.nbgrader_ext.HideHiddenTests",
    "autograder.host.sanitize.SanitizeStudentHTML",  # a TA opens these pages: no student script, frame or handler
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
c.GenerateFeedback.pre_convert_hook = nbgrader_route.before_feedback  # only regular files reach the feedback
c.HideHiddenTests.enabled = not settings.show_hidden_tests
