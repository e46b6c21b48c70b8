"""Third-round hostile submissions: a full disk. Each case is graded with the others in tests/test_hostile.py.

The measured attack wrote ten files of 500 MB (each under the file-size limit) into the kernel's folder, 5 GB
of the host's disk in 23 s. Both cases ride on the planted bug and must earn what it earns honestly; the fill
stops at the folder's limit inside the kernel (``ENOSPC``), which the graded notebook shows.
"""

from . import NO_TANH, Case, after, planted

FILL = """
import errno, os


def fill(folder, files=10, mb=500):
    chunk, written, errors = bytes(8 * 2**20), 0, set()
    for k in range(files):
        try:
            with open(os.path.join(folder, f"fill{k}.bin"), "wb") as fh:
                for _ in range(mb // 8):
                    fh.write(chunk)
                    written += len(chunk)
        except OSError as err:
            errors.add(errno.errorcode[err.errno])
    return f"{written >> 20} MB written, stopped by {sorted(errors)}"
"""

OWN_FOLDER = FILL + """
print("own folder:", fill("."))
"""

# The kernel's sockets are the unix sockets it has bound: their folder is where nbgrader connects.
SOCKET_FOLDER = FILL + """
with open("/proc/net/unix") as fh:
    bound = {line.split()[-1] for line in fh.read().splitlines()[1:] if line.split()[-1].startswith("/")}
for folder in sorted({os.path.dirname(path) for path in bound}):
    made = 0
    try:
        while made < 5000:
            open(os.path.join(folder, f"flood{made}"), "w").close()
            made += 1
    except OSError as err:
        print(errno.errorcode[err.errno])
    print("socket folder:", made, "empty files,", fill(folder))
"""


def cases() -> list:
    return [
        Case("disk_fill_folder", after(planted, "lstm_cell", OWN_FOLDER), NO_TANH,
             ["own folder:", "stopped by ['ENOSPC']"], set(),
             about="writes ten files of 500 MB into the kernel's folder to fill the host's disk"),
        Case("disk_fill_sockets", after(planted, "lstm_cell", SOCKET_FOLDER), NO_TANH,
             ["socket folder: 5000 empty files,", "stopped by ['ENOSPC']"], set(),
             about="floods the folder of the kernel's sockets (shared with nbgrader) with files, then 500 MB ones"),
    ]
