"""One class on a JupyterHub, on disk: who is in it, where its directories are, which ports it uses.

``make_class`` writes it into ``HOME/hub/class.json``; the hub's config, the launcher and the tests read it back
with ``load``. The directories under the class's home::

    hub/          root only (0700): class.json, the demo passwords, the hub's database, cookie secret and log
    jupyter/      every server's Jupyter config: the exchange, nbgrader's JupyterHub auth
    course/       the course directory: the grader account's (0750), not the students'
    exchange/     nbgrader's exchange (1777); exchange/<course>/ is the grader account's
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..host.course import ROOT

HUB_CONFIG = ROOT / "hub" / "jupyterhub_config.py"
NODE_PREFIX = ROOT / ".hub" / "node"  # `make hub-setup`: configurable-http-proxy from hub/package-lock.json
PROXY = NODE_PREFIX / "node_modules" / ".bin" / "configurable-http-proxy"
STUDENTS = 3


@dataclass(frozen=True)
class Class:
    """A class: the names are ``PREFIX`` + instructor, s1.., grader (the service's account), course (a Unix group
    of everyone who may log in)."""

    home: Path
    course_id: str
    prefix: str
    python: str  # the course environment's Python: every server, kernel and the service runs it
    ports: dict = field(default_factory=dict)  # public, hub, proxy_api, service: all on 127.0.0.1
    homes: str = ""  # where the users' home directories go ("": useradd's default)
    lifetime: int = 0  # seconds any process the hub starts may live (0: no limit); the tests set it

    @property
    def bin(self) -> Path:
        """The course environment's commands (first on every server's PATH: nbgrader runs ``alembic``)."""
        return Path(self.python).parent

    @property
    def instructors(self) -> list[str]:
        return [f"{self.prefix}instructor"]

    @property
    def students(self) -> list[str]:
        return [f"{self.prefix}s{k}" for k in range(1, STUDENTS + 1)]

    @property
    def grader(self) -> str:
        return f"{self.prefix}grader"

    @property
    def group(self) -> str:
        return f"{self.prefix}course"

    @property
    def people(self) -> list[str]:
        return self.instructors + self.students

    @property
    def formgrade_group(self) -> str:
        return f"formgrade-{self.course_id}"  # nbgrader's JupyterHubAuthPlugin: the course's graders

    @property
    def student_group(self) -> str:
        return f"nbgrader-{self.course_id}"  # nbgrader's JupyterHubAuthPlugin: the course's students

    @property
    def hub_dir(self) -> Path:
        return self.home / "hub"

    @property
    def course_dir(self) -> Path:
        return self.home / "course"

    @property
    def exchange(self) -> Path:
        return self.home / "exchange"

    @property
    def jupyter_config(self) -> Path:
        return self.home / "jupyter" / "config"

    @property
    def passwords(self) -> Path:
        return self.hub_dir / "passwords"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['public']}"

    def save(self) -> Path:
        path = class_file(self.home)
        data = {**asdict(self), "home": str(self.home)}
        path.write_text(json.dumps(data, indent=1) + "\n")
        return path


def class_file(home: Path) -> Path:
    return Path(home) / "hub" / "class.json"


def load(home: Path) -> Class:
    """The class that ``make_class`` set up in ``home``."""
    data = json.loads(class_file(home).read_text())
    return Class(**{**data, "home": Path(data["home"])})
