"""Telegram login secrets: API credentials, where the session file lives, and its permissions.

The session file is a full login credential (its auth key needs no password to use), so it is
kept outside the vault (vaults get synced to phones and clouds; both locations are compared with
every symlink resolved, so a link into the vault is refused), in a folder created 0700 and a
file kept 0600. Before every start :func:`check_private` verifies both: anything readable by
group or others is refused with a message saying how to fix it, or repaired with a warning when
the user asked for that (``--repair-permissions``). Telethon creates its files with the process
umask, so :func:`private_umask` wraps client creation.

API credentials come from the environment (``TOBS_API_ID``, ``TOBS_API_HASH``) or the config;
they are never printed or logged (the settings' ``repr`` hides the hash). Limits: POSIX
permissions only; on Windows the checks are skipped (the user profile folder is private).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from tobs_sync.config import Settings
from tobs_sync.errors import ConfigError, TobsError

log = logging.getLogger(__name__)


class InsecurePermissions(TobsError):
    """A secret file or folder can be read by other users."""


@dataclass(frozen=True, slots=True)
class ApiCredentials:
    api_id: int
    api_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class LoginPrompts:
    """How ``login`` asks for the phone number, the login code and the 2FA password."""

    phone: Callable[[], str]
    code: Callable[[], str]
    password: Callable[[], str]

    @classmethod
    def from_environment(
        cls, ask: Callable[[str], str], ask_secret: Callable[[str], str], environ: Mapping[str, str] | None = None
    ) -> LoginPrompts:
        """Take TOBS_PHONE, TOBS_CODE and TOBS_PASSWORD when set (headless setups), else ask."""
        env = os.environ if environ is None else environ

        def answer(variable: str, question: str, secret: bool) -> Callable[[], str]:
            def get() -> str:
                value = env.get(variable, "").strip()
                if value:
                    return value
                return (ask_secret if secret else ask)(question).strip()

            return get

        return cls(
            phone=answer("TOBS_PHONE", "Phone number (international format): ", False),
            code=answer("TOBS_CODE", "Login code Telegram sent you: ", True),
            password=answer("TOBS_PASSWORD", "Two-step verification password: ", True),
        )


def api_credentials(settings: Settings, environ: Mapping[str, str] | None = None) -> ApiCredentials:
    """The API id and hash, from ``TOBS_API_ID``/``TOBS_API_HASH`` first, then the config."""
    env = os.environ if environ is None else environ
    raw_id = env.get("TOBS_API_ID", "").strip()
    if raw_id:
        if not raw_id.isdigit():
            raise ConfigError("TOBS_API_ID: must be a number (from https://my.telegram.org)")
        api_id = int(raw_id)
    else:
        api_id = settings.telegram.api_id
    api_hash = env.get("TOBS_API_HASH", "").strip() or settings.telegram.api_hash
    if not api_id:
        raise ConfigError("telegram.api_id: not set; set TOBS_API_ID or add it to .tobs/config.toml")
    if not api_hash:
        raise ConfigError("telegram.api_hash: not set; set TOBS_API_HASH or add it to .tobs/config.toml")
    return ApiCredentials(api_id, api_hash)


def session_dir(settings: Settings) -> Path:
    """The folder of this vault's session: configured, or the user's config folder."""
    folder = Path(settings.telegram.session_dir).expanduser() if settings.telegram.session_dir else (
        Path(platformdirs.user_config_dir("tobs-sync")) / "sessions"
    )
    folder = folder.absolute()
    real_folder, real_vault = _real(folder), _real(settings.vault_root)
    if real_folder == real_vault or real_folder.is_relative_to(real_vault):
        through = "" if real_folder == _lexical(folder) else f" (through a symlink: it is {real_folder})"
        raise ConfigError(
            f"telegram.session_dir: {folder} is inside the vault{through}; the session is a login credential "
            "and must live outside anything that gets synced"
        )
    return folder


def _real(path: Path) -> Path:
    """``path`` with every symlink resolved (as far as it exists), in the file system's case rules."""
    return Path(os.path.normcase(os.path.realpath(path)))


def _lexical(path: Path) -> Path:
    return Path(os.path.normcase(os.path.normpath(path)))


def session_path(settings: Settings) -> Path:
    """This vault's session file (one per vault, named after the vault's location)."""
    vault_id = hashlib.sha256(str(settings.vault_root).encode("utf-8")).hexdigest()[:16]
    return session_dir(settings) / f"vault-{vault_id}.session"


def ensure_private_dir(folder: Path) -> None:
    """Create ``folder`` (and parents) with mode 0700 for the last component."""
    with private_umask():
        folder.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders created inside are private to the user (umask 077)."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def check_private(folder: Path, *, repair: bool = False) -> list[str]:
    """Refuse (or, with ``repair``, fix) a session folder or file readable by group or others.

    Returns the warnings of what was repaired. Checks the folder and every file in it (the
    session database and its journal).
    """
    if os.name != "posix" or not folder.exists():
        return []
    folder = Path(os.path.realpath(folder))  # a symlink's own mode is always 777: check where it points
    repaired: list[str] = []
    for path, private_mode in [(folder, 0o700), *((p, 0o600) for p in sorted(folder.iterdir()) if p.is_file())]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077 == 0:
            continue
        if not repair:
            raise InsecurePermissions(
                f"{path} can be read by other users (mode {mode:o}); it holds your Telegram login. "
                f"Fix it with 'chmod {private_mode:o} {path}', or run again with --repair-permissions"
            )
        path.chmod(private_mode)
        repaired.append(f"{path} was mode {mode:o}; set to {private_mode:o}")
    for warning in repaired:
        log.warning("repaired permissions: %s", warning)
    return repaired
