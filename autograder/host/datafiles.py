"""Copy a folder that someone else could have written, as data: regular files and folders only.

Used twice on the way from a submission to a kernel: staging copies ``submitted/<student>/<assignment>``
(the student's files) to the folder nbgrader grades, and the sandbox launcher copies nbgrader's folder
into a fresh folder of its own, which the sandboxed kernel sees read-only and copies into its in-memory
folder (without the sandbox, the kernel works in it). Neither the source nor anything in it is
trusted: the walk goes through directory file descriptors and ``O_NOFOLLOW``, so a symbolic link, a
FIFO, a socket or a device is never opened, let alone followed, and a file is read only after
``fstat`` says it is still the regular file ``lstat`` saw. A regular file with more than one link is
dropped too (a hard link to someone else's file reads as theirs). Sizes, counts and depth are capped.
What was left out comes back as one line per item, in words a student can read.
"""

import errno
import os
import stat
from dataclasses import dataclass, field

# One place for the limits of what a submission may bring beside its notebook.
MAX_FILE_BYTES = 16 * 2**20
MAX_TOTAL_BYTES = 64 * 2**20
MAX_ENTRIES = 2000
MAX_DEPTH = 12

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a device", stat.S_IFBLK: "a device"}


@dataclass
class Copied:
    files: int = 0
    bytes: int = 0
    entries: int = 0


def kind_of(mode: int) -> str:
    """What a file is, in words: 'a symbolic link', 'a FIFO', ..."""
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def shown(name: str) -> str:
    """A file name as a note can show it: no markup, no control characters, not too long."""
    text = "".join(ch if ch.isprintable() and ch not in "`<>&" else "?" for ch in name)
    return text if len(text) <= 80 else text[:77] + "..."


def open_regular(path: str, max_bytes: int = MAX_FILE_BYTES, dir_fd: int | None = None) -> tuple[bytes, str]:
    """(contents, '') of a regular file at ``path``, or (b'', why not) without following or blocking."""
    try:
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return b"", "missing"
    except OSError as err:
        return b"", f"unreadable ({err.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return b"", f"is {kind_of(st.st_mode)}"
    if st.st_nlink > 1:
        return b"", "is a hard link to another file"
    if st.st_size > max_bytes:
        return b"", f"is {st.st_size / 2**20:.1f} MB, over the limit of {max_bytes / 2**20:.0f} MB"
    try:
        fd = os.open(path, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        return b"", "is a symbolic link" if err.errno == errno.ELOOP else f"unreadable ({err.strerror})"
    try:
        now = os.fstat(fd)
        if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev) or not stat.S_ISREG(now.st_mode):
            return b"", "changed while it was being read"
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 2**20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            return b"", f"grew past the limit of {max_bytes / 2**20:.0f} MB while it was being read"
        return data, ""
    finally:
        os.close(fd)


def _write_new(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


class _TooMany(Exception):
    """More entries than a copy may make: stop walking."""


@dataclass
class _Copy:
    """One ``copy_data``: what was copied, the notes, the limits."""

    skip: frozenset
    max_total: int
    max_entries: int
    max_depth: int
    done: Copied = field(default_factory=Copied)
    notes: list = field(default_factory=list)

    def walk(self, dir_fd: int, rel: str, out: str, depth: int) -> None:
        try:
            names = sorted(os.listdir(dir_fd))
        except OSError as err:
            self.notes.append(f"`{shown(rel or '.')}` could not be listed ({err.strerror})")
            return
        for name in names:
            if not rel and name in self.skip:
                continue
            self.done.entries += 1
            if self.done.entries > self.max_entries:
                self.notes.append(f"more than {self.max_entries} files and folders: the rest were not copied")
                raise _TooMany
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue
            where = f"{rel}/{name}" if rel else name
            if stat.S_ISDIR(st.st_mode):
                self.folder(dir_fd, name, where, os.path.join(out, name), depth)
            else:
                self.file(dir_fd, name, where, os.path.join(out, name), st)

    def folder(self, dir_fd: int, name: str, where: str, out: str, depth: int) -> None:
        if depth >= self.max_depth:
            self.notes.append(f"`{shown(where)}` is nested more than {self.max_depth} folders deep: not copied")
            return
        try:
            sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            self.notes.append(f"`{shown(where)}` changed while it was being copied: not copied")
            return
        try:
            os.mkdir(out, 0o755)
            self.walk(sub, where, out, depth + 1)
        finally:
            os.close(sub)

    def file(self, dir_fd: int, name: str, where: str, out: str, st) -> None:
        if stat.S_ISREG(st.st_mode) and self.done.bytes + st.st_size > self.max_total:
            self.notes.append(f"`{shown(where)}` would take the files past {self.max_total / 2**20:.0f} MB in all: "
                              "not copied")
            return
        data, why = open_regular(name, dir_fd=dir_fd)
        if why:
            self.notes.append(f"`{shown(where)}` {why}: not copied (only regular files and folders reach the grader)")
            return
        _write_new(out, data)
        self.done.files += 1
        self.done.bytes += len(data)


def copy_data(src: str, dst: str, skip: frozenset = frozenset(), *, max_total: int = MAX_TOTAL_BYTES,
              max_entries: int = MAX_ENTRIES, max_depth: int = MAX_DEPTH) -> tuple[Copied, list[str]]:
    """Copy the regular files and folders under ``src`` into the new folder ``dst``.

    ``skip`` names top-level entries to leave out silently (the notebook, which is staged on its own).
    Returns what was copied and one note for each thing left out. ``dst`` must not exist yet.
    """
    os.mkdir(dst, 0o755)
    copy = _Copy(skip, max_total, max_entries, max_depth)
    try:
        root = os.open(src, _DIR_FLAGS)
    except OSError as err:
        if err.errno != errno.ENOENT:
            copy.notes.append(f"the submission's folder is "
                              f"{'a symbolic link' if err.errno == errno.ELOOP else 'unreadable'}"
                              ": nothing beside the notebook was copied")
        return copy.done, copy.notes
    try:
        copy.walk(root, "", dst, 0)
    except _TooMany:
        pass
    finally:
        os.close(root)
    return copy.done, copy.notes


def remove_non_regular(root: str) -> list[str]:
    """Delete every entry under ``root`` that is neither a regular file nor a folder; their paths.

    Run before nbgrader copies a folder it did not write alone (feedback copies every file it finds).
    """
    removed = []
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(here, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                os.unlink(path)
                removed.append(path)
        dirs[:] = [d for d in dirs if os.path.lexists(os.path.join(here, d))]
    return removed
