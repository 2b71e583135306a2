"""Live results: rank 0 writes the results file in short sessions, and any process may read it at any time.

Writing: open-append-close. Rank 0 never keeps the file open: each flush opens it, appends and
closes it (:func:`writing`), so between flushes the file is closed and whole, as a kill leaves it
(a kill inside a session, which lasts milliseconds, can damage it as before: HDF5 has no journal;
``--resume`` cuts back to the checkpoint). A new file is written under a temporary name and renamed
(:func:`create`): nobody sees one half made, and a kill then leaves only ``RUN.h5.<pid>.new``. HDF5
SWMR was the alternative; it needs the newest file format, allows no new attribute or group while
the run goes on (status, models, reports), and leaves a killed writer's file marked open for
writing until ``h5clear`` runs on it.

Locks. For its whole run the writer holds an exclusive ``flock`` on the file (:func:`hold`): a second
writer (``--resume``, ``--overwrite``, tools/search.py) is refused; where the file system has no flock
the run goes on without. HDF5's own file locking is off on every open, the writer's included (h5py
``locking=False``), so readers never take or wait on the writer's lock and a reader holding the file
open never makes a session fail. Programs that open the file with HDF5's locking (plain
``h5py.File``, h5dump) are refused while a run holds it: they would read it without the check below.
Where ``HDF5_USE_FILE_LOCKING`` asks HDF5 to lock (TRUE, 1, BEST_EFFORT), it overrides
``locking=False``: every open then takes HDF5's lock, the run takes none of its own (it would refuse
its own sessions), a session waits up to ``WAIT_S`` for other programs' opens, readers retry the
writer's, and a second writer is no longer refused.

Consistency: a sequence lock. The root attribute ``write_seq`` counts sessions: a session sets it
odd and flushes that to the file before it changes anything else, flushes all its changes, then sets
it even and closes. A reader (:func:`read`) opens the file (read-only, no lock), notes ``write_seq``,
reads what it needs and closes; then it opens the file again and reads ``write_seq`` afresh. Equal
and even means that no session overlapped the read (any session that wrote something the reader saw
had made it odd first), so the reader saw the file exactly as one session left it. Otherwise, or on
an error, it waits and tries again; a file that has stopped changing and still fails (or still says
odd: its writer was killed mid-session) is read once more as it stands, and a failure then is
reported with its real reason, in one line. The argument rests on other processes seeing one
process's writes in the order made: true on a node's own file systems, Lustre and GPFS; over NFS,
where another node may see them in any order until the writer closes the file, a reader there can
rarely get a mixed state. Within one process HDF5 shares an open file's cached metadata among all
its opens, so a process that keeps the file open itself must not rely on :func:`read` seeing news.
"""
from __future__ import annotations

import errno
import fcntl
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import h5py

from hpcfed.errors import HpcfedError, one_line
from hpcfed.runtime import interrupts

SEQ = "write_seq"       # root attribute: odd while a write session is under way
RETRY_S = 5.0           # how long a reader retries a file that keeps changing under it
STABLE_S = 0.5          # how long a file that keeps failing the same way must stay unchanged to be judged
PAUSE_S = 0.05          # between a reader's tries (on average)
WAIT_S = 60.0           # how long a write waits for others' HDF5 locks (only where HDF5_USE_FILE_LOCKING forces them)
SIGNATURE = b"\x89HDF\r\n\x1a\n"
JITTER = random.Random()   # spreads readers' retries (its own generator: the global one stays untouched)
NO_FLOCK = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)   # a file system without flock (Lustre without -o flock)
T = TypeVar("T")


class _Retry(Exception):
    """A read that caught the file mid-write, or failed (``message``: the real reason)."""

    def __init__(self, reason: tuple, message: str = ""):
        super().__init__(message)
        self.reason, self.message = reason, message


def hold(path: str | Path, who: str) -> int | None:
    """An exclusive flock on ``path`` for a run's duration (the descriptor; None where the file system
    has none); ``who`` starts the one-line error when another process holds the file."""
    try:
        fd = os.open(path, os.O_RDWR)   # NFS emulates flock with POSIX locks: an exclusive one needs write access
    except OSError as err:
        raise HpcfedError(f"{who} {str(path)!r} cannot be opened ({err.strerror or err})") from None
    if hdf5_locks():   # HDF5 then locks each session's open itself, and a lock of ours would refuse those opens
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in NO_FLOCK:
            return None
        raise HpcfedError(f"{who} {str(path)!r} is in use by another process: a run writing it, or a program holding "
                          "it open with HDF5 file locking (h5py, h5dump, HDFView); stop or close that first") from None
    return fd


def writer_holds(path: str | Path) -> bool | None:
    """Whether a process on this machine holds the run's lock on ``path`` (:func:`hold`): True while
    its run writes it, False once none does (a run whose file says "running" was then killed), None
    where that cannot be told (no flock here, or HDF5's own locks in force)."""
    if hdf5_locks():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError as err:
        return None if err.errno in NO_FLOCK else True
    finally:
        os.close(fd)   # also releases the shared lock, if it was taken


def release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def create(path: str | Path, fill: Callable[[h5py.File], None]) -> int | None:
    """A new file at ``path``, written by ``fill`` under a temporary name and renamed over any older
    file (one that no other process holds); returns the lock held on it (:func:`hold`)."""
    path = Path(path)
    older = hold(path, "--out") if path.exists() else None
    tmp = path.with_name(f"{path.name}.{os.getpid()}.new")
    try:
        with h5py.File(tmp, "w", locking=False) as f:
            f.attrs[SEQ] = 0
            fill(f)
        held = hold(tmp, "--out")
        os.replace(tmp, path)
        return held
    finally:
        release(older)
        tmp.unlink(missing_ok=True)


@contextmanager
def writing(path: str | Path, held: int | None) -> Iterator[h5py.File]:
    """One write session on ``path`` (see the module docstring); resumable signals wait until it ends.
    ``held``: the run's lock, whose file ``path`` must still be."""
    if held is not None:
        try:
            same = os.path.samestat(os.fstat(held), os.stat(path))
        except OSError:
            same = False
        if not same:
            raise HpcfedError(f"results file {str(path)!r} was removed or replaced while this run wrote it; "
                              "its checkpoint is kept (restore the file to continue with --resume)")
    f = _open_for_writing(path)   # outside: waiting for another program's lock must not hold signals back
    with interrupts.deferred():
        try:
            seq = int(f.attrs.get(SEQ, 0))
            seq += 1 if seq % 2 == 0 else 2
            f.attrs[SEQ] = seq
            f.flush()
        except BaseException:
            f.close()
            raise
        try:
            yield f
        finally:
            try:
                f.flush()
                f.attrs[SEQ] = seq + 1
            finally:
                f.close()


def hdf5_locks() -> bool:
    """Whether HDF5_USE_FILE_LOCKING makes HDF5 lock every open, ``locking=False`` notwithstanding."""
    return os.environ.get("HDF5_USE_FILE_LOCKING", "").strip().upper() in ("TRUE", "1", "BEST_EFFORT")


def _open_for_writing(path: str | Path) -> h5py.File:
    """The file opened for a session; where HDF5 locks every open, after waiting out other opens."""
    waited = time.monotonic() + WAIT_S
    while True:
        try:
            return h5py.File(path, "r+", locking=False)
        except OSError as err:
            if "unable to lock" not in str(err):
                raise
            if time.monotonic() > waited:
                raise HpcfedError(f"results file {str(path)!r} stayed locked by another process for {WAIT_S:g} s "
                                  f"(HDF5_USE_FILE_LOCKING={os.environ.get('HDF5_USE_FILE_LOCKING')} makes every "
                                  "open take HDF5's lock); close that program, or unset the variable") from None
        time.sleep(PAUSE_S / 10)   # readers hold their locks for milliseconds: try often


def read(path: str | Path, what: Callable[[h5py.File], T]) -> T:
    """``what(file)`` on the file as one write session left it (see the module docstring). An
    :class:`HpcfedError`, one line starting with the quoted path, where it cannot be: missing,
    unreadable, not HDF5, not an hpcfed results file, or what HDF5 says."""
    path = Path(path)
    _check_path(path)
    start = time.monotonic()
    since, last = start, None   # since when the file has looked the same and failed the same way
    while True:
        state = _state(path)
        try:
            return _read_once(path, what, consistent=True)
        except _Retry as retry:
            failed = retry
        now = time.monotonic()
        if (state, failed.reason) != last:
            since, last = now, (state, failed.reason)
        elif now - since >= STABLE_S and failed.reason[0] != "changed":
            # unchanged, yet it still says a write is under way (its writer was killed mid-write) or
            # still fails: read it as it stands, or say why that fails
            return _read_once(path, what, consistent=False)
        if now - start >= RETRY_S:
            raise HpcfedError(failed.message or f"{str(path)!r} kept changing while read for {RETRY_S:g} s "
                                                "(its writer writes it without pause); try again")
        time.sleep(PAUSE_S * JITTER.uniform(0.5, 1.5))


def _read_once(path: Path, what: Callable[[h5py.File], T], consistent: bool) -> T:
    """One try; with ``consistent``, :class:`_Retry` where a write overlapped it or it failed."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            seq = int(f.attrs.get(SEQ, 0))
            if consistent and seq % 2:
                raise _Retry(("under way", seq))
            if "hpcfed_version" not in f.attrs and "config_yaml" not in f.attrs:
                failure: Exception | None = HpcfedError(f"{str(path)!r} is not an hpcfed results file: an HDF5 file "
                                                        "without hpcfed's attributes (hpcfed_version, config_yaml)")
            else:
                try:
                    value, failure = what(f), None
                except HpcfedError as err:
                    failure = err
                except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
                    failure = HpcfedError(f"{str(path)!r} is not a readable hpcfed results file ({one_line(err)})")
        if consistent:
            with h5py.File(path, "r", locking=False) as f:
                if int(f.attrs.get(SEQ, 0)) != seq:
                    raise _Retry(("changed",))
    except OSError as err:
        if consistent:
            raise _Retry(("failed", one_line(err)), _open_failure(path, err)) from None
        raise HpcfedError(_open_failure(path, err)) from None
    if failure is not None:
        raise failure
    return value


def _check_path(path: Path) -> None:
    """The reasons a path cannot be a results file that the file system gives (missing, a folder,
    unreadable, not HDF5), in one line each."""
    if not path.exists():
        raise HpcfedError(f"{str(path)!r} does not exist")
    if path.is_dir():
        raise HpcfedError(f"{str(path)!r} is a folder, not a results file")
    try:
        with open(path, "rb") as handle:
            size, offset = os.fstat(handle.fileno()).st_size, 0
            while offset == 0 or offset + len(SIGNATURE) <= size:   # HDF5 looks at 0, 512, 1024, 2048, ...
                handle.seek(offset)
                if handle.read(len(SIGNATURE)) == SIGNATURE:
                    return
                offset = max(512, offset * 2)
    except OSError as err:
        raise HpcfedError(f"{str(path)!r} cannot be read ({err.strerror or err})") from None
    raise HpcfedError(f"{str(path)!r} is not an hpcfed results file: it cannot be read as HDF5 "
                      f"(no HDF5 signature{'; the file is empty' if not size else ''})")


def _state(path: Path) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return st.st_ino, st.st_size, st.st_mtime_ns


def _open_failure(path: Path, err: OSError) -> str:
    text = one_line(err)
    if "unable to lock" in text:
        return (f"{str(path)!r} is locked by another process ({text}); HDF5_USE_FILE_LOCKING="
                f"{os.environ.get('HDF5_USE_FILE_LOCKING', '(unset)')} makes this reader take HDF5's lock too")
    return f"{str(path)!r} cannot be read as HDF5 ({text})"
