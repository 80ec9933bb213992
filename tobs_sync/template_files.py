"""Where templates come from: regular files inside one folder, reached without a symlink.

A vault is a folder other programs and other devices write into (Obsidian Sync, git, a phone),
so a template name is untrusted: ``{% include "../../.ssh/id_rsa" %}``, an absolute name or a
symlinked ``footer.md -> /etc/passwd`` would put another file's bytes into every note.
:class:`ConfinedLoader` loads a template only when its name is a plain relative path (no
``..``, ``.``, empty part, backslash or drive), every part below the folder is a real folder
or, last, a regular file (no symlink, no Windows junction, no FIFO or device), and its real
location is inside the folder. Anything else is a :class:`~tobs_sync.errors.TemplateError`
naming the template and the reason; a template that simply is not there is Jinja's
``TemplateNotFound``, so the next folder (the built-in templates) is tried.

Limits: the check is made at each load, not held: a program swapping a folder for a symlink
between the check and the read could still redirect it (the last part is opened without
following links and compared with what was checked, so a swapped *file* is caught). The folder
itself may be a symlink only when ``allow_linked_root`` is set (the built-in templates inside an
installed package, which are trusted); a vault's templates folder never is. The folders above it
are the caller's to confine (the app resolves the templates folder through the vault, which
refuses symlinks on the way).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path, PureWindowsPath

import jinja2

from tobs_sync.errors import TemplateError
from tobs_sync.plain_paths import inspect_unlinked, is_link, strictly_below

_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


class ConfinedLoader(jinja2.BaseLoader):
    """Loads templates that are regular files inside ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path, *, allow_linked_root: bool = False) -> None:
        self.folder = Path(os.path.realpath(folder)) if allow_linked_root else Path(os.path.abspath(folder))

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        parts = _template_parts(template)
        if not self._root_exists(template):
            raise jinja2.TemplateNotFound(template)
        path = self.folder
        for index, part in enumerate(parts):
            path = path / part
            info, problem = inspect_unlinked(path)
            if problem:
                raise _refusal(template, problem)
            if info is None:
                raise jinja2.TemplateNotFound(template)
            last = index == len(parts) - 1
            if not last and not stat.S_ISDIR(info.st_mode):
                raise jinja2.TemplateNotFound(template)
            if last and not stat.S_ISREG(info.st_mode):
                raise _refusal(template, f"{path} is not a regular file")
        if not strictly_below(os.path.realpath(path), self.folder):
            raise _refusal(template, f"{path} resolves outside {self.folder}")
        source = _read_checked(template, path, info)
        return source, str(path), _unchanged(path, info)

    def _root_exists(self, template: str) -> bool:
        """Whether the folder exists; a folder that is a symlink or not a folder is refused."""
        try:
            info = os.lstat(self.folder)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _refusal(template, f"cannot inspect the templates folder {self.folder}: {exc}") from exc
        if is_link(info):
            raise _refusal(template, f"the templates folder {self.folder} is a symlink")
        if not stat.S_ISDIR(info.st_mode):
            raise _refusal(template, f"the templates folder {self.folder} is not a folder")
        return True


def _template_parts(template: str) -> list[str]:
    """The parts of a template name, or TemplateError if it is not a plain relative path."""
    problem = None
    if not isinstance(template, str) or not template:
        problem = "a template name must be non-empty text"
    elif "\x00" in template or "\\" in template:
        problem = "it contains a NUL character or a backslash (folders are separated by '/')"
    elif template.startswith("/") or PureWindowsPath(template).drive:
        problem = "it is an absolute path; name a file inside the templates folder"
    elif any(part in ("", ".", "..") for part in template.split("/")):
        problem = "it has an empty, '.' or '..' part; name a file inside the templates folder"
    if problem:
        raise _refusal(template, problem)
    return template.split("/")


def _read_checked(template: str, path: Path, checked: os.stat_result) -> str:
    """The text of ``path``, opened without following a link and verified to be the file checked."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        raise _refusal(template, f"cannot open {path}: {exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (checked.st_dev, checked.st_ino):
            raise _refusal(template, f"{path} changed while it was being read")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read()
    except OSError as exc:
        raise _refusal(template, f"cannot read {path}: {exc}") from exc
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refusal(template, f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _unchanged(path: Path, checked: os.stat_result) -> Callable[[], bool]:
    """Jinja's "is the compiled template still current" check: same file, same modification time."""

    def uptodate() -> bool:
        try:
            info = os.lstat(path)
        except OSError:
            return False
        return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size) == (
            checked.st_dev, checked.st_ino, checked.st_mtime_ns, checked.st_size
        )

    return uptodate


def _refusal(template: object, why: str) -> TemplateError:
    return TemplateError(f"refusing template {template!r}: {why}")
