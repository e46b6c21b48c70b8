"""The course on a JupyterHub with nbgrader's exchange: ``make hub`` (``hub/jupyterhub_config.py`` is the hub's config).

What runs where:

- as root: ``make_class`` (Unix users and groups, the course directory, the exchange, the servers' Jupyter
  config) and the hub itself (``run``: JupyterHub with PAM logins and the configurable-http-proxy), which
  starts every server as its Unix user;
- as the course's grader account: the course service ``lstm-course``, a Jupyter server with the Formgrader on
  the course directory; its Autograde grades through ``autograder.host.nbgrader_route`` (the sandboxed batch);
- as each student or instructor: that person's own Jupyter server (the Assignments tab: fetch, submit, fetch
  feedback) and kernels; a submission leaves it through ``exchange.PrivateSubmit``.

``layout`` describes one class on disk (``class.json``); every other module reads it from there.
"""
