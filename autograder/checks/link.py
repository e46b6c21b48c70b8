"""How a hidden test reaches the student's code: one exchange with the kernel's probe at a time.

A ``Link`` sends a request (a dict of plain data, ``autograder.kernel.wire``) and returns the probe's reply.
While grading, the link is the grader's own executor (``autograder.host.execute.KernelLink``): it sends each
request as a message on a Jupyter comm to the sandboxed kernel and reads the reply from the same comm. Run in a
plain kernel (``make solutions``, an instructor trying a test), a hidden test opens a ``LocalLink``, which
runs the probe in the same process, through the same encoding.
"""

import contextlib

from ..kernel import wire


class ExchangeFailed(Exception):
    """No usable reply: the probe was missing, replaced by something that did not answer, or garbled."""


class ExchangeTimeout(ExchangeFailed):
    """The student's code did not return in time (the kernel was interrupted)."""


class Link:
    def exchange(self, request: dict) -> dict:
        raise NotImplementedError

    def submitted(self) -> dict[str, str]:
        """The text of the cells the student wrote, as the grader read them from the submitted file (never
        from the kernel): a solution cell under its grade id, a cell the student added under ``"cell <index>"``.
        Empty where there is no submitted file (a plain kernel running the tests)."""
        return {}


class LocalLink(Link):
    """The probe in this process, on ``namespace`` (a plain kernel's user namespace)."""

    def __init__(self, namespace: dict):
        from ..kernel.probe import Probe

        self.probe = Probe(namespace)

    def exchange(self, request: dict) -> dict:
        reply = self.probe.answer(wire.loads(wire.dumps(request)))
        return wire.loads(wire.dumps(reply))


_current: list[Link] = []


def current() -> Link | None:
    return _current[-1] if _current else None


@contextlib.contextmanager
def using(link: Link):
    _current.append(link)
    try:
        yield link
    finally:
        _current.pop()

