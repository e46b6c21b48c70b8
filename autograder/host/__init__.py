"""The grader's host side: the course as plain data, staging, the batch runner, the sandbox launcher,
the nbgrader preprocessors that run the student's cells and judge the grading cells, the gradebook and
its report. Nothing here runs inside the sandbox."""
