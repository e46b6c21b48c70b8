"""``python -m autograder.hub.run --home DIR``: JupyterHub for the class that ``make_class`` set up in ``DIR``, as root.

The hub runs in ``DIR/hub`` with ``hub/jupyterhub_config.py``; with the class's ``lifetime`` set (the tests) it
runs under ``timeout``, as every server, proxy and service it starts does.

Every user runs the course environment's own Python. Where that interpreter lies under a folder other users
cannot enter (a Python installed under root's private home, e.g. pyenv's), the hub runs in its own mount
namespace in which that folder is an empty, enterable one holding only the interpreter's installation: the
servers it starts see the same, nothing else of the folder is visible to them, and nothing changes outside.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import layout

NOBODY = "nobody"


def runs_for_everyone(python: str) -> bool:
    """Whether an unprivileged user can start ``python`` with the course's server packages."""
    probe = ["runuser", "-u", NOBODY, "--", python, "-c", "import jupyterhub, nbgrader, ipykernel"]
    return subprocess.run(probe, capture_output=True, cwd="/").returncode == 0


def closed_folder(python: str) -> tuple[Path, Path] | None:
    """(the folder others cannot enter, its entry that leads to the interpreter) on the interpreter's real path."""
    real = Path(os.path.realpath(python))
    for folder in real.parents[::-1]:
        if not os.stat(folder).st_mode & 0o001:
            return folder, folder / real.relative_to(folder).parts[0]
    return None


def expose(entry: Path) -> None:
    """In this (new, private) mount namespace: ``entry``'s folder becomes an empty tmpfs others may enter, with
    ``entry`` bound back into it."""
    keep = Path(tempfile.mkdtemp(prefix="hub-expose-"))
    for cmd in (["mount", "--bind", str(entry), str(keep)],
                ["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m", "tmpfs", str(entry.parent)]):
        subprocess.run(cmd, check=True)
    entry.mkdir()
    subprocess.run(["mount", "--move", str(keep), str(entry)], check=True)
    keep.rmdir()


def command(klass: layout.Class) -> list[str]:
    lifetime = ["timeout", "--kill-after=10", str(klass.lifetime)] if klass.lifetime else []
    return [*lifetime, sys.executable, "-m", "jupyterhub", "-f", str(layout.HUB_CONFIG)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.hub.run", description=__doc__.split("\n")[0])
    parser.add_argument("--home", required=True, type=Path, help="the class's directory (make_class --home)")
    parser.add_argument("--expose", type=Path, help=argparse.SUPPRESS)  # the second stage, in the namespace
    args = parser.parse_args(argv)
    klass = layout.load(args.home.resolve())
    if not layout.PROXY.exists():
        raise SystemExit(f"no configurable-http-proxy at {layout.PROXY}: run `make hub-setup`")
    if args.expose:
        expose(args.expose)
    elif not runs_for_everyone(klass.python):
        closed = closed_folder(klass.python)
        if closed is None:
            raise SystemExit(f"other users cannot run {klass.python}: can everyone read the course's environment?")
        print(f"{klass.python} lies under {closed[0]}, which other users cannot enter: the hub sees {closed[1]} "
              f"in an enterable {closed[0]} of its own (a private mount namespace)", flush=True)
        cmd = ["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-m", "autograder.hub.run",
               "--home", str(klass.home), "--expose", str(closed[1])]
        os.execvp(cmd[0], cmd)
    print(f"JupyterHub for {klass.course_id} at {klass.url}/ (passwords: {klass.passwords})", flush=True)
    os.chdir(klass.hub_dir)
    cmd = command(klass)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
