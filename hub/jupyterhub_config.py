"""JupyterHub for the course (``make hub``): the class that ``autograder/hub/make_class.py`` set up.

Runs as root, in the class's ``hub/`` folder (``autograder/hub/run.py`` starts it there), on 127.0.0.1 only:

- logins: the Unix users of the course's group, by their Unix password (PAM);
- each person's Jupyter server runs as that Unix user (LocalProcessSpawner), from the course's environment,
  with the course kernel and nbgrader's Assignments tab on the class's exchange;
- the course service (named like the course, as nbgrader's JupyterHub auth expects) runs the Formgrader on the
  course directory as the grader account; only the group ``formgrade-<course>`` may open it;
- feedback on submit: a second service, as the grader account, grades each submission as it arrives and
  releases that student's feedback (``autograder/hub/feedback.py``);
- nbgrader's groups: ``formgrade-<course>`` (the instructors) and ``nbgrader-<course>`` (the students).
"""

from pathlib import Path

from autograder.hub import layout

c = get_config()  # noqa: F821 (provided by JupyterHub)
klass = layout.load(Path.cwd().parent)
course, host = klass.course_id, "127.0.0.1"
# the tests give every process the hub starts a lifetime: nothing outlives them
lifetime = ["timeout", "--kill-after=10", str(klass.lifetime)] if klass.lifetime else []

c.JupyterHub.bind_url = f"http://{host}:{klass.ports['public']}"
c.JupyterHub.hub_bind_url = f"http://{host}:{klass.ports['hub']}"
c.ConfigurableHTTPProxy.api_url = f"http://{host}:{klass.ports['proxy_api']}"
c.ConfigurableHTTPProxy.command = [*lifetime, str(layout.PROXY)]
c.ConfigurableHTTPProxy.pid_file = str(klass.hub_dir / "jupyterhub-proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{klass.hub_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(klass.hub_dir / "jupyterhub_cookie_secret")

c.JupyterHub.authenticator_class = "jupyterhub.auth.PAMAuthenticator"
c.PAMAuthenticator.allowed_groups = {klass.group}
c.PAMAuthenticator.open_sessions = False

# Every server reads the class's nbgrader config (exchange, nbgrader's JupyterHub auth); the course kernel is the
# environment's own (`make setup`).
environment = {"JUPYTER_CONFIG_PATH": str(klass.jupyter_config), "PATH": f"{klass.bin}:/usr/local/bin:/usr/bin:/bin"}
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Spawner.cmd = [*lifetime, str(klass.bin / "jupyterhub-singleuser")]
c.Spawner.default_url = "/tree"
c.Spawner.environment = environment
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
# A server's own token: nbgrader asks the hub for its user's groups (the courses), and an instructor's
# Courses tab lists the course services (granted only where the user holds it: the graders' role below).
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", "read:users:groups!user",
                                 "list:services", "read:services"]

# The grader account is a member too: nbgrader in the service asks the hub for its courses.
c.JupyterHub.load_groups = {
    klass.formgrade_group: {"users": [*klass.instructors, klass.grader]},
    klass.student_group: {"users": klass.students},
}
c.JupyterHub.load_roles = [
    {"name": f"{course}-graders", "groups": [klass.formgrade_group],
     "scopes": [f"access:services!service={course}", "list:services", "read:services"]},
    # nbgrader's JupyterHub auth in the service: a student added in the Formgrader joins nbgrader-<course>
    {"name": f"{course}-service", "services": [course],
     "scopes": ["list:users", "read:users:groups", "list:groups", "read:groups",
                f"groups!group={klass.student_group}"]},
]
c.JupyterHub.services = [{
    "name": course,
    "url": f"http://{host}:{klass.ports['service']}",
    "command": [*lifetime, str(klass.bin / "jupyterhub-singleuser")],
    "user": klass.grader,
    "cwd": str(klass.course_dir),  # the Formgrader's course: nbgrader_config.py there
    "environment": environment,
    "oauth_no_confirm": True,
}, {
    # feedback on submit (autograder/hub/feedback.py): a process, no web page; the hub starts it again if it dies
    "name": f"{course}-feedback",
    "command": [*lifetime, klass.python, "-m", "autograder.hub.feedback", "--course", str(klass.course_dir),
                "--exchange", str(klass.exchange), "--course-id", course],
    "user": klass.grader,
    "cwd": str(klass.course_dir),
    "environment": environment,
}]
