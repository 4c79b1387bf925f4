"""File-system helpers for crash safety: temporary-file names, stale temporary files, printable paths
and one-line error messages.

Every file sirestore writes goes first to a hidden temporary file next to it, named
`.<name>.<pid>.<random>.tmp`, and is then renamed into place, so a reader never sees a partial
file. A process killed hard (SIGKILL, power loss) can leave its temporary file behind; since the
name holds the writer's process id, a later run removes those whose writer is gone
(`clean_stale_temps`) and never touches a file another live process is still writing.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from pathlib import Path

_TEMP = re.compile(r"^\..*\.(\d+)\.[0-9a-f]{12}\.tmp$", re.DOTALL)
_NAME_KEEP = 120  # characters of the target name kept in the temporary name (file names are <= 255 bytes)


def temp_path(path: str | Path) -> Path:
    """A fresh hidden temporary path next to `path` for a write-then-rename."""
    path = Path(path)
    return path.parent / f".{path.name[:_NAME_KEEP]}.{os.getpid()}.{secrets.token_hex(6)}.tmp"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's) or cannot tell: keep the file
    return True


def stale_temps(folder: str | Path) -> list[Path]:
    """Temporary files of sirestore's pattern in `folder` whose writing process no longer runs."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match and not _alive(int(match.group(1))) and entry.is_file(follow_symlinks=False):
            found.append(Path(entry.path))
    return sorted(found)


def clean_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the stale temporary files of `folder` (see `stale_temps`); returns those removed."""
    removed = []
    for path in stale_temps(folder):
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def shown(path: str | Path | bytes) -> str:
    """A path as one printable line: control characters and undecodable bytes are escaped."""
    text = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def one_line(err: object, empty: str | None = None) -> str:
    """The whole message of `err` on one line (runs of white space, newlines included, become one
    space); `empty` (default: the type's name) when the message is blank."""
    return " ".join(str(err).split()) or (type(err).__name__ if empty is None else empty)


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type's name when the message is blank."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def file_problem(path: str | Path) -> str | None:
    """Why `path` cannot be read as a non-empty regular file, or None. Never opens it (a FIFO would block)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
        if path.is_symlink():
            return "broken symbolic link (its target does not exist)"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return "file not found"
        if isinstance(e, PermissionError):
            return "permission denied"
        return f"cannot access the file ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not an image file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a device, pipe or socket)"
    if st.st_size == 0:
        return "file is empty (0 bytes)"
    return None
