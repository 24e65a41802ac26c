"""Replace a directory atomically: what save() uses so that a failed or killed save never
leaves a half-written or missing checkpoint.

The new directory is written beside the target (`.NAME.tmp-PID-XXXX`), its files and itself are
fsync'ed, and then it takes the target's place in one step:

- Linux: renameat2(RENAME_EXCHANGE) swaps the two directory entries atomically, so at every
  instant `NAME` is either the complete old directory or the complete new one, even if the
  process is killed (SIGKILL) between any two instructions;
- elsewhere (or a filesystem refusing the exchange): two renames, NAME -> .NAME.old-PID, then the
  new one -> NAME. A kill between them leaves the old directory complete under its `.old-` name;
  the next save() (or read_checkpoint_dir below) puts it back.

Temporary directories of dead processes (a killed save) are removed by the next save to the same
parent.

    >>> import tempfile, pathlib
    >>> from torch_lowbit.atomic_dir import replace_dir
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> def write(tmp): (tmp / "a.txt").write_text("v1")
    >>> replace_dir(root / "ckpt", write) == root / "ckpt"
    True
    >>> (root / "ckpt" / "a.txt").read_text()
    'v1'
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _load_renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; False where the OS or filesystem cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, f"renameat2(RENAME_EXCHANGE) of {a} and {b}: {os.strerror(err)}")


def fsync_tree(path: Path) -> None:
    """Flush every file under `path` and the directories themselves to disk."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # platforms without directory fds (Windows)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the data files are flushed
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(target: Path, kind: str) -> list[tuple[Path, int]]:
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.{kind}-(\d+)(-.*)?$")
    found = []
    if target.parent.is_dir():
        for p in target.parent.iterdir():
            m = pattern.match(p.name)
            if m:
                found.append((p, int(m.group(1))))
    return found


def recover(target: Path) -> None:
    """Undo what a save killed mid-way left: restore `.NAME.old-PID` if NAME is missing (the
    two-rename fallback) and remove temporary directories of processes that are gone."""
    olds = [(p, pid) for p, pid in _leftovers(target, "old") if not _pid_alive(pid)]
    if not target.exists() and olds:
        newest = max(olds, key=lambda item: item[0].stat().st_mtime)[0]
        os.replace(newest, target)
        olds = [(p, pid) for p, pid in olds if p != newest]
    for p, _ in olds:
        shutil.rmtree(p, ignore_errors=True)
    for p, pid in _leftovers(target, "tmp"):
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def replace_dir(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Run `write(tmp)` to fill a fresh directory, then make it `target` atomically.

    If `write` raises (or the process dies), `target` is left exactly as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; a checkpoint gets the usual mode
        write(tmp)
        fsync_tree(tmp)
        if not target.exists():
            os.replace(tmp, target)
        elif exchange(tmp, target):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old directory
        else:
            _replace_by_two_renames(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _replace_by_two_renames(new: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)  # put the old checkpoint back
        raise
    shutil.rmtree(old, ignore_errors=True)
