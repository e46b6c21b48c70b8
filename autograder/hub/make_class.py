"""``python -m autograder.hub.make_class --home DIR``: the demo class on this machine, as root (``make hub`` runs it).

Creates, or brings up to date (it may run again): the Unix users (an instructor, three students, each with a
private home and a password in ``DIR/hub/passwords``) and the course's Unix group (who may log in); the
grader account that the course service runs as; the course directory (this checkout's ``source/`` and
``nbgrader_config.py``), the grader account's alone; nbgrader's exchange with the permissions of nbgrader's
docs (a world-writable root with the sticky bit; inbound writable, not listable, sticky); every server's
nbgrader config; ``DIR/hub/class.json`` (``layout``). The checkout itself holds the course environment
every server runs, so it stays readable, but what gives answers away (``PRIVATE``: the solutions, the zoo's
correct styles, the mistakes' edits of the reference answers, the speed ladder, the tests) is closed to other
users and opened to the grader account by an ACL (``setfacl``, package ``acl``). ``--remove`` takes it all away
again: the users' processes, the users and their homes, the group, the grader's ACL entries, ``DIR``.
"""

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..host.course import ROOT, copy_course
from . import layout
from .feedback import POLICY_FILE, Policy, write_policy
from .layout import Class


def run(*cmd: str, stdin: str | None = None) -> None:
    done = subprocess.run(cmd, input=stdin, text=True, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip()}")


# What a student's account may not read in the checkout (relative to it): closed to "other", open to graders.
PRIVATE = ("source", "solutions", ".git", "tests", "benchmarks", "autograder/checks", "autograder/zoo",
           "autograder/ladder.py", "autograder/demo.py")


def close_checkout(klass: Class) -> None:
    """``PRIVATE`` closed to other users, readable by the class's grader account (the service grades with it)."""
    if not shutil.which("setfacl"):
        raise SystemExit("the hub needs setfacl (apt-get install acl) to open the checkout's solutions to the "
                         "grader account only")
    for rel in PRIVATE:
        path = ROOT / rel
        if path.exists() and not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o007)
            run("setfacl", "-m", f"u:{klass.grader}:{'rx' if path.is_dir() else 'r'}", str(path))


def reopen_checkout(klass: Class) -> None:
    """The grader account's ACL entries off again (the folders stay closed to other users)."""
    for rel in PRIVATE:
        path = ROOT / rel
        if path.exists() and not path.is_symlink() and shutil.which("setfacl"):
            subprocess.run(["setfacl", "-x", f"u:{klass.grader}", str(path)], capture_output=True)


def course_id() -> str:
    """The course id in this checkout's ``nbgrader_config.py`` (the service's name and nbgrader's groups)."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config().CourseDirectory.course_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ users and groups


def exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def add_user(klass: Class, name: str, groups: list[str]) -> None:
    """A Unix user with a private home (0700), in ``groups``; an existing one is kept."""
    if not exists(name):
        base = ["--base-dir", klass.homes] if klass.homes else []
        run("useradd", "--create-home", "--user-group", "--shell", "/bin/bash", *base,
            *(["--groups", ",".join(groups)] if groups else []), name)
    Path(pwd.getpwnam(name).pw_dir).chmod(0o700)


def set_passwords(klass: Class) -> dict[str, str]:
    """A password for each person without one in ``hub/passwords`` (root's alone); all of them."""
    known = json.loads(klass.passwords.read_text()) if klass.passwords.exists() else {}
    new = {name: secrets.token_urlsafe(12) for name in klass.people if name not in known}
    if new:
        run("chpasswd", stdin="".join(f"{name}:{word}\n" for name, word in new.items()))
    known.update(new)
    klass.passwords.touch(mode=0o600)
    klass.passwords.write_text(json.dumps(known, indent=1) + "\n")
    return known


def make_users(klass: Class) -> None:
    if subprocess.run(["getent", "group", klass.group], capture_output=True).returncode != 0:
        run("groupadd", klass.group)
    for name in klass.people:
        add_user(klass, name, [klass.group])
    add_user(klass, klass.grader, [])  # no password: it never logs in; the hub starts the service as it


# ------------------------------------------------------------------------------------------ the directories


def chown(path: Path, user: str, recursive: bool = False) -> None:
    entry = pwd.getpwnam(user)
    for p in [path, *(path.rglob("*") if recursive else [])]:
        os.lchown(p, entry.pw_uid, entry.pw_gid)


def make_dirs(klass: Class, on_submit: bool = True) -> None:
    klass.home.mkdir(parents=True, exist_ok=True)
    klass.home.chmod(0o755)
    klass.hub_dir.mkdir(exist_ok=True)
    klass.hub_dir.chmod(0o700)
    if not klass.course_dir.exists():  # a course that exists keeps its gradebook and submissions
        copy_course(klass.course_dir)
        shutil.copy(ROOT / "nbgrader_config.py", klass.course_dir / "nbgrader_config.py")
    if not (klass.course_dir / POLICY_FILE).exists():
        write_policy(klass.course_dir, Policy(enabled=on_submit))
    chown(klass.course_dir, klass.grader, recursive=True)
    klass.course_dir.chmod(0o750)  # its group is the grader account's own: no student is in it
    make_exchange(klass)
    write_jupyter_config(klass)


def make_exchange(klass: Class) -> None:
    """nbgrader's exchange: the root as its docs ask (world-writable, here with the sticky bit, as /tmp), and the
    course's folders made now, the grader account's: outbound (readable), inbound (students may write a
    submission, not list or remove another's; setgid, so submissions get the grader account's group) and
    feedback (not listable: a student reaches only the file named by his own submission's secret)."""
    klass.exchange.mkdir(exist_ok=True)
    klass.exchange.chmod(0o1777)
    course = klass.exchange / klass.course_id
    for path, mode in ((course, 0o755), (course / "outbound", 0o755), (course / "inbound", 0o3733),
                       (course / "feedback", 0o711)):
        path.mkdir(exist_ok=True)
        chown(path, klass.grader)
        path.chmod(mode)


def write_jupyter_config(klass: Class) -> None:
    """The nbgrader config every server reads (``JUPYTER_CONFIG_PATH``, set by the hub): the exchange, nbgrader's
    JupyterHub auth (courses from the hub's groups), private submissions, collected only from their authors."""
    klass.jupyter_config.mkdir(parents=True, exist_ok=True)
    nbgrader = {
        "CourseDirectory": {"course_id": klass.course_id},
        "Exchange": {"root": str(klass.exchange), "path_includes_course": True},
        "Authenticator": {"plugin_class": "nbgrader.auth.JupyterHubAuthPlugin"},
        "ExchangeFactory": {"submit": "autograder.hub.exchange.PrivateSubmit",
                            "collect": "autograder.hub.exchange.CheckedCollect"},
    }
    (klass.jupyter_config / "nbgrader_config.json").write_text(json.dumps(nbgrader, indent=1) + "\n")
    for path in (klass.jupyter_config.parent, klass.jupyter_config):
        path.chmod(0o755)


# ------------------------------------------------------------------------------------------ set up, take away


def make(home: Path, port: int, prefix: str, homes: str = "", lifetime: int = 0, on_submit: bool = True) -> Class:
    """Set the class up in ``home`` (again: what exists is kept), its hub on 127.0.0.1:``port``."""
    if os.geteuid() != 0:
        raise SystemExit("the class's users and directories are made as root: `sudo make hub`")
    home = Path(home).resolve()
    previous = layout.load(home) if layout.class_file(home).exists() else None
    ports = {"public": port, "hub": free_port(), "proxy_api": free_port(), "service": free_port()}
    if previous and previous.ports.get("public") == port:
        ports = previous.ports
    klass = Class(home=home, course_id=course_id(), prefix=prefix, python=sys.executable, ports=ports,
                  homes=homes, lifetime=lifetime)
    if klass.homes:
        Path(klass.homes).mkdir(parents=True, exist_ok=True)
    make_users(klass)
    make_dirs(klass, on_submit)
    close_checkout(klass)
    set_passwords(klass)
    klass.save()
    return klass


def stop_processes(users: list[str], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, to every process of ``users`` (userdel refuses a user with processes)."""
    uids = {pwd.getpwnam(u).pw_uid for u in users if exists(u)}

    def theirs() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and entry.stat().st_uid in uids:
                    pids.append(int(entry.name))
            except FileNotFoundError:
                continue
        return pids

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in theirs():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while theirs() and time.monotonic() < deadline:
            time.sleep(0.2)


def remove(home: Path) -> None:
    """Take the class in ``home`` away: its users' processes, the users with their homes, the group, ``home``."""
    klass = layout.load(Path(home))
    accounts = [*klass.people, klass.grader]
    stop_processes(accounts)
    reopen_checkout(klass)
    for name in accounts:
        if exists(name):
            subprocess.run(["userdel", "--remove", name], capture_output=True)
    subprocess.run(["groupdel", klass.group], capture_output=True)
    shutil.rmtree(klass.home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.hub.make_class", description=__doc__.split("\n")[0])
    parser.add_argument("--home", required=True, type=Path, help="the class's directory (hub state, course, exchange)")
    parser.add_argument("--port", type=int, default=8000, help="the hub's port on 127.0.0.1")
    parser.add_argument("--prefix", default="lstm-", help="the start of every Unix name of the class")
    parser.add_argument("--homes", default="", help="where the users' homes go (default: useradd's, /home)")
    parser.add_argument("--lifetime", type=int, default=0, help="seconds any process the hub starts may live")
    parser.add_argument("--on-submit", choices=("on", "off"), default="on",
                        help="a new course's feedback on submit (the instructor changes it in feedback_on_submit.json)")
    parser.add_argument("--remove", action="store_true", help="take the class in --home away")
    args = parser.parse_args(argv)
    if args.remove:
        remove(args.home)
        return 0
    klass = make(args.home, args.port, args.prefix, args.homes, args.lifetime, args.on_submit == "on")
    print(f"class {klass.course_id} in {klass.home}: instructor {', '.join(klass.instructors)}, students "
          f"{', '.join(klass.students)}; passwords in {klass.passwords}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
