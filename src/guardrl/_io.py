"""Atomic file writes: write beside the target, then rename, so a failure never leaves a half-written file.

Temporaries are named ``.<target>.tmp-<pid>-<random>`` beside the target. A process killed mid-write (SIGKILL,
power loss) cannot remove its own; the next write to the same target removes those whose process is gone, so
nothing is left behind for good. Files and folders get the modes the umask gives an ordinary ``open`` or
``mkdir`` (``tempfile`` would make them 0600 / 0700).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guardrl.errors import OutputError, OutputExistsError


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: swap and restore
    os.umask(mask)
    return mask


def _tmp_prefix(path: Path, kind: str = "tmp") -> str:
    return f".{path.name}.{kind}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove temporaries of ``path`` left by processes that no longer run; returns what was removed."""
    path = Path(path)
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    for entry in path.parent.iterdir():
        kind = next((k for k in ("tmp", "old") if entry.name.startswith(_tmp_prefix(path, k))), None)
        if kind is None:
            continue
        pid_text = entry.name[len(_tmp_prefix(path, kind)) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        if kind == "old" and not path.exists() and (entry / path.name).exists():
            os.replace(entry / path.name, path)  # killed between the two renames: the old version comes back
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def check_output(path: Path, overwrite: bool = False, what: str = "output") -> None:
    """Fail early, before any work, when ``path`` exists (and ``overwrite`` is off) or cannot be created.

    Looks for the nearest existing ancestor, which must be a writable folder, and probes it by creating and
    removing a temporary entry (permission bits alone do not tell for root or on read-only mounts).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{path}: cannot write the {what} there: {parent} is a file, not a folder")
    try:
        probe = Path(tempfile.mkdtemp(prefix=f"{_tmp_prefix(path)}{os.getpid()}-probe", dir=parent))
        probe.rmdir()
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the {what} in {parent} ({exc.strerror or exc})") from None


def _temporary(path: Path, kind: str = "tmp", folder: bool = False) -> Path:
    """A file (or folder) beside ``path`` named for this process, with the mode the umask gives."""
    prefix, parent = f"{_tmp_prefix(path, kind)}{os.getpid()}-", path.parent
    try:
        if folder:
            tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, dir=parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in {parent} ({exc.strerror or exc})") from None
    os.chmod(tmp, (0o777 if folder else 0o666) & ~current_umask())
    return tmp


def _mkdir_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create its folder {path.parent} ({exc.strerror or exc})") from None


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path``."""
    path = Path(path)
    _mkdir_parent(path)
    remove_stale_temporaries(path)
    tmp = _temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def atomic_write_dir(path: Path, fill: Callable[[Path], None], overwrite: bool = False) -> None:
    """Build a directory in a temporary sibling with ``fill(tmp_dir)``, then move it into place."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it")
    _mkdir_parent(path)
    remove_stale_temporaries(path)
    tmp = _temporary(path, folder=True)
    try:
        fill(tmp)
        if path.exists():
            old = _temporary(path, "old", folder=True)
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
