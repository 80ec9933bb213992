"""Telling plain files and folders from symlinks and junctions, and where a real path lies.

The vault writer (:mod:`tobs_sync.vault`) and the template loader (:mod:`tobs_sync.template_files`)
both walk a path one part at a time from a trusted folder and refuse any part that is a link, even
one pointing inside; :func:`inspect_unlinked` is the check of one part they share, and
:func:`strictly_below` the final check of where the real path lies. What a missing part or a
non-folder means (a new file to write, a template not found) stays with each caller.

Limits: each answer is about the moment of the ``lstat``; nothing is held, so a part swapped for a
link afterwards is the caller's to catch (or accept, as their own docstrings say). Junctions are
recognised by the Windows reparse-point attribute; other reparse points count as links too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_REPARSE_POINT = stat.FILE_ATTRIBUTE_REPARSE_POINT  # Windows junctions and symlinks


def is_link(info: os.stat_result) -> bool:
    """Whether ``info`` (from ``os.lstat``) is a symlink or a Windows junction."""
    return stat.S_ISLNK(info.st_mode) or bool(getattr(info, "st_file_attributes", 0) & _REPARSE_POINT)


def inspect_unlinked(path: Path) -> tuple[os.stat_result | None, str | None]:
    """``path``'s own status (None if it does not exist) and why it may not be used (a symlink or
    junction, or it cannot be inspected), or None."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot inspect {path}: {exc}"
    if is_link(info):
        return info, f"{path} is a symlink"
    return info, None


def strictly_below(path: str, root: Path) -> bool:
    """Whether the real path ``path`` lies inside ``root`` (and is not ``root`` itself)."""
    path, top = os.path.normcase(path), os.path.normcase(root)
    try:
        return path != top and os.path.commonpath([path, top]) == top
    except ValueError:  # different drives
        return False
