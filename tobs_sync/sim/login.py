"""The simulated Telegram's login: the code, two-step verification and the account's home data centre.

What a new session meets, as with Telegram (core.telegram.org/api/auth):

* ``auth.sendCode`` and ``auth.signIn`` on a DC other than the account's home answer
  ``PHONE_MIGRATE_X`` (``X`` = the home DC); Telethon then moves its session there and repeats.
* ``auth.signIn`` with the right code logs in, or, when the account has a 2FA password, answers
  ``SESSION_PASSWORD_NEEDED``; a wrong code is ``PHONE_CODE_INVALID``.
* ``account.getPassword`` answers a real ``account.password`` with SRP parameters and
  ``auth.checkPassword`` verifies the client's SRP proof (:mod:`srp`): ``PASSWORD_HASH_INVALID`` for a
  wrong password, ``SRP_ID_INVALID`` for an unknown or used challenge.

Limits: one phone number is accepted for the account whatever its digits (any well-formed number);
no SMS/call fallbacks, no sign-up, no password recovery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from telethon.tl import functions, types
from telethon.tl.tlobject import TLObject

from tobs_sync.sim.rpc import RpcFault, bad_request
from tobs_sync.sim.srp import SrpPassword

CODE_HASH = "sim-code-hash"
REQUESTS_BEFORE_LOGIN: frozenset[type] = frozenset(
    {
        functions.auth.SendCodeRequest,
        functions.auth.SignInRequest,
        functions.account.GetPasswordRequest,
        functions.auth.CheckPasswordRequest,
        functions.help.GetConfigRequest,
        functions.PingRequest,
    }
)
"""Requests a session that is not logged in may make."""


class LoginDesk:
    """Login state of the account: whether sessions are authorised, its code, its 2FA password."""

    def __init__(self, home_dc: int, self_user: types.User, seed: int, *, logged_in: bool = True) -> None:
        self.home_dc = home_dc
        self.self_user = self_user
        self.logged_in = logged_in
        self.code = "12345"
        self._seed = seed
        self._password: SrpPassword | None = None
        self.password_checks = 0
        """``auth.checkPassword`` requests answered (right or wrong)."""

    def set_password(self, password: str | None) -> None:
        """Turn two-step verification on with ``password`` (``None``: off)."""
        self._password = SrpPassword(password, self._seed) if password is not None else None

    @property
    def has_password(self) -> bool:
        return self._password is not None

    def handlers(self) -> dict[type, Callable[[Any, Any], TLObject | bool]]:
        return {
            functions.auth.SendCodeRequest: self._send_code,
            functions.auth.SignInRequest: self._sign_in,
            functions.account.GetPasswordRequest: self._get_password,
            functions.auth.CheckPasswordRequest: self._check_password,
        }

    def _on_home(self, dc: int) -> None:
        if dc != self.home_dc:
            raise RpcFault(303, f"PHONE_MIGRATE_{self.home_dc}")

    def _send_code(self, req: functions.auth.SendCodeRequest, ctx: Any) -> TLObject:
        if not req.phone_number.strip("+ ").replace(" ", "").isdigit():
            raise bad_request("PHONE_NUMBER_INVALID")
        self._on_home(ctx.dc)
        return types.auth.SentCode(type=types.auth.SentCodeTypeApp(length=len(self.code)), phone_code_hash=CODE_HASH)

    def _sign_in(self, req: functions.auth.SignInRequest, ctx: Any) -> TLObject:
        self._on_home(ctx.dc)
        if req.phone_code_hash != CODE_HASH:
            raise bad_request("PHONE_CODE_EXPIRED")
        if not req.phone_code:
            raise bad_request("PHONE_CODE_EMPTY")
        if req.phone_code != self.code:
            raise bad_request("PHONE_CODE_INVALID")
        if self._password is not None:
            raise RpcFault(401, "SESSION_PASSWORD_NEEDED")
        self.logged_in = True
        return types.auth.Authorization(user=self.self_user)

    def _get_password(self, req: functions.account.GetPasswordRequest, ctx: Any) -> TLObject:
        if self._password is None:
            return types.account.Password(
                new_algo=types.PasswordKdfAlgoUnknown(), new_secure_algo=types.SecurePasswordKdfAlgoUnknown(),
                secure_random=bytes(32), has_password=False,
            )
        return self._password.challenge()

    def _check_password(self, req: functions.auth.CheckPasswordRequest, ctx: Any) -> TLObject:
        check = req.password
        if self._password is None or not isinstance(check, types.InputCheckPasswordSRP):
            raise bad_request("PASSWORD_HASH_INVALID")
        self.password_checks += 1
        verdict = self._password.check(check.srp_id, check.A, check.M1)
        if verdict is None:
            raise bad_request("SRP_ID_INVALID")
        if not verdict:
            raise bad_request("PASSWORD_HASH_INVALID")
        self.logged_in = True
        return types.auth.Authorization(user=self.self_user)
