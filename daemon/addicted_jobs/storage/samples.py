"""Training samples from a directory, read with the rights of whoever asked: the daemon reads only
files that user could read itself, through directories it could search, and never follows a
symlink swapped in since the walk.
"""

from __future__ import annotations

import os
import pwd
import random
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_SAMPLE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Requester:
    """Who asked for a training from a directory (SO_PEERCRED): the daemon reads only what this
    user could read itself, so the socket never lends the daemon's rights to a local user."""

    uid: int
    gids: frozenset[int]

    @classmethod
    def of_uid(cls, uid: int) -> Requester:
        try:
            entry = pwd.getpwuid(uid)
            gids = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
        except KeyError:  # a uid without a passwd entry: its own files and world-readable ones
            gids = frozenset()
        return cls(uid, gids)

    def may(self, st: os.stat_result, bits: int) -> bool:
        """True when the permission `bits` (4 read, 1 search) of `st` are granted to us."""
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            granted = st.st_mode >> 6
        elif st.st_gid in self.gids:
            granted = st.st_mode >> 3
        else:
            granted = st.st_mode
        return granted & bits == bits


def _reachable(directory: Path, requester: Requester) -> None:
    for ancestor in reversed(directory.parents):
        if not requester.may(ancestor.stat(), 1):
            raise PermissionError(f"{ancestor}: not searchable by uid {requester.uid}")
    if not requester.may(directory.stat(), 4 | 1):
        raise PermissionError(f"{directory}: not readable by uid {requester.uid}")


def _candidates(directory: Path, requester: Requester | None) -> list[tuple[Path, int, int]]:
    """(path, device, inode) of the regular files under `directory` (symlinks not followed) that
    `requester` may read, seen through directory descriptors."""
    found: list[tuple[Path, int, int]] = []
    for dirpath, dirnames, filenames, dirfd in os.fwalk(directory, follow_symlinks=False):
        if requester is not None and not requester.may(os.fstat(dirfd), 4 | 1):
            dirnames[:] = []  # nor anything below it
            continue
        for name in filenames:
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= MAX_SAMPLE_BYTES:
                continue
            if requester is None or requester.may(st, 4):
                found.append((Path(dirpath) / name, st.st_dev, st.st_ino))
    return found


def _read_same(path: Path, dev: int, ino: int) -> bytes | None:
    # O_NOFOLLOW and the inode seen by the walk: a file or directory swapped for a symlink since
    # (to somewhere the requester cannot read) is not read.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        st = os.fstat(file.fileno())
        if (st.st_dev, st.st_ino) != (dev, ino):
            return None
        return file.read(MAX_SAMPLE_BYTES + 1)[:MAX_SAMPLE_BYTES]


def directory_samples(
    directory: Path, limit: int, requester: Requester | None = None
) -> list[bytes]:
    """Up to `limit` files under `directory` (recursively), at random. With a `requester`, only
    files that user can read, through directories it can search. Blocking: use a thread."""
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory the daemon can read")
    try:
        if requester is not None:
            _reachable(directory, requester)
        files = _candidates(directory, requester)
        picked = random.sample(files, min(limit, len(files)))
        samples = [data for entry in picked if (data := _read_same(*entry))]
    except PermissionError as exc:
        raise ValueError(f"cannot train on {directory}: {exc}") from None
    except OSError as exc:
        raise ValueError(f"cannot read samples under {directory}: {exc}") from exc
    return samples
