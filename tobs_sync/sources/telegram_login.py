"""Logging a Telethon client in to Telegram, asking for the phone number, the code and the password.

:func:`log_in` connects, and when the session is not yet logged in asks through
:class:`~tobs_sync.session.LoginPrompts` (a terminal, environment variables, or a test's answers);
it always disconnects, and Telegram's refusals, wrong codes and passwords, and network failures
become a :class:`SourceError` naming the step, never a traceback.

Limits: the phone number is asked at most three times and the code and the 2FA password at most
:data:`LOGIN_ATTEMPTS` times each; QR-code login and bot tokens are not offered. The session file
Telethon writes while logging in is created private (``private_umask``).
"""

from __future__ import annotations

import contextlib

from telethon import TelegramClient, errors, utils

from tobs_sync.errors import SourceError
from tobs_sync.session import LoginPrompts, private_umask
from tobs_sync.sources.telegram_requests import deadline, describe

LOGIN_ATTEMPTS = 3
"""Times the login code, and then the 2FA password, are asked before logging in gives up."""


async def log_in(client: TelegramClient, prompts: LoginPrompts, *, timeout_s: float) -> str:
    """Log ``client`` in, asking through ``prompts`` (a session already logged in asks nothing);
    returns the account's name. Always disconnects; Telegram's refusals become a :class:`SourceError`.

    The code and, for accounts with two-step verification, the password are each asked at most
    :data:`LOGIN_ATTEMPTS` times. An account homed on another data centre is followed there
    (Telethon handles ``PHONE_MIGRATE_X`` and saves the new DC in the session)."""
    try:
        await deadline(timeout_s, client.connect(), "connecting to Telegram")
        if not await deadline(timeout_s, client.is_user_authorized(), "checking the login"):
            phone = _ask_phone(prompts)
            with private_umask():  # Telethon writes the session file as it goes
                try:
                    await client.start(
                        phone=phone, code_callback=prompts.code, password=prompts.password,
                        max_attempts=LOGIN_ATTEMPTS,
                    )
                except RuntimeError as error:  # how Telethon gives up after three wrong codes
                    raise SourceError(f"logging in: {error}") from error
                except errors.PasswordHashInvalidError as error:  # ... and after three wrong passwords
                    raise SourceError(
                        f"logging in: the two-step verification password was wrong {LOGIN_ATTEMPTS} times "
                        "(TOBS_PASSWORD, or the one typed at the prompt)"
                    ) from error
        me = await deadline(timeout_s, client.get_me(), "reading the logged-in account")
    except errors.RPCError as error:
        raise SourceError(f"logging in: Telegram refused it ({describe(error)})") from error
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
    name = " ".join(p for p in (getattr(me, "first_name", None), getattr(me, "last_name", None)) if p)
    return name or "your account"


def _ask_phone(prompts: LoginPrompts, attempts: int = 3) -> str:
    """The phone number, asked until it parses (Telethon itself would ask forever, and a number
    from ``TOBS_PHONE`` would never change). The number is not repeated in the error: it is private."""
    for _ in range(attempts):
        if phone := utils.parse_phone(prompts.phone()):
            return str(phone)
    raise SourceError("logging in: that is not a phone number; give it in international format, e.g. +44 20 7946 0000")
