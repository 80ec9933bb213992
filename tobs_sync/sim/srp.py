"""The server side of Telegram's two-step verification (SRP-2048), for the simulated login.

Telegram's 2FA (core.telegram.org/api/srp) never sends the password: the server stores the verifier
``v = g^x mod p`` with ``x = PH2(password, salt1, salt2)``, where

* ``PH1 = SH(SH(password, salt1), salt2)`` with ``SH(data, salt) = sha256(salt | data | salt)``,
* ``PH2 = SH(pbkdf2(sha512, PH1, salt1, 100000), salt2)``.

``account.getPassword`` sends ``salt1``, ``salt2``, ``g``, ``p`` and a fresh ``B = k*v + g^b mod p``
(``k = H(p | g)``, numbers padded to 256 bytes, ``H`` = sha256) with its ``srp_id``. The client answers
``auth.checkPassword`` with ``A = g^a`` and ``M1 = H(H(p) xor H(g) | H(salt1) | H(salt2) | A | B | K)``;
the server computes ``u = H(A | B)``, ``S = (A * v^u)^b mod p``, ``K = H(S)`` and compares ``M1``.

The group is Telegram's public 2048-bit safe prime with ``g = 3`` (the one Telegram's servers send and
Telethon's ``password.check_prime_and_good`` accepts without factorising). Server secrets ``b`` and
the salts come from the simulator's seed, so runs are repeatable. Limits: one password per account,
no password change or recovery; a challenge can be answered once.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from telethon.tl import types

from tobs_sync.sim.content import rng_for

PRIME = int(
    "C71CAEB9C6B1C9048E6C522F70F13F73980D40238E3E21C14934D037563D930F48198A0AA7C14058229493D22530F4DB"
    "FA336F6E0AC925139543AED44CCE7C3720FD51F69458705AC68CD4FE6B6B13ABDC9746512969328454F18FAF8C595F64"
    "2477FE96BB2A941D5BCD1D4AC8CC49880708FA9B378E3C4F3A9060BEE67CF9A4A4A695811051907E162753B56B0F6B41"
    "0DBA74D8A84B2A14B3144E0EF1284754FD17ED950D5965B4B9DD46582DB1178D169C6BC465B0D6FF9CA3928FEF5B9AE4"
    "E418FC15E83EBEA0F87FA9FF5EED70050DED2849F47BF959D956850CE929851F0D8115F635B105EE2E4E15D04B2454BF"
    "6F4FADF034B10403119CD8E3B92FCC5B",
    16,
)
GENERATOR = 3
SIZE = 256
PBKDF2_ITERATIONS = 100_000


def _h(*parts: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _pad(number: int) -> bytes:
    return number.to_bytes(SIZE, "big")


def password_hash(password: str, salt1: bytes, salt2: bytes) -> int:
    """``x = PH2(password, salt1, salt2)`` as an integer."""
    ph1 = _h(salt2, _h(salt1, password.encode("utf-8"), salt1), salt2)
    stretched = hashlib.pbkdf2_hmac("sha512", ph1, salt1, PBKDF2_ITERATIONS)
    return int.from_bytes(_h(salt2, stretched, salt2), "big")


_K = int.from_bytes(_h(_pad(PRIME), _pad(GENERATOR)), "big")


@dataclass(frozen=True, slots=True)
class _Challenge:
    b: int
    big_b: bytes


class SrpPassword:
    """One account's 2FA password as Telegram stores it (salts and verifier), and its open challenges."""

    def __init__(self, password: str, seed: int) -> None:
        rng = rng_for(seed, "srp", "salts")
        self.salt1 = rng.randbytes(40)
        self.salt2 = rng.randbytes(16)
        self._verifier = pow(GENERATOR, password_hash(password, self.salt1, self.salt2), PRIME)
        self._seed = seed
        self._issued = 0
        self._open: dict[int, _Challenge] = {}

    @property
    def algo(self) -> types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow:
        return types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=self.salt1, salt2=self.salt2, g=GENERATOR, p=_pad(PRIME)
        )

    def challenge(self) -> types.account.Password:
        """A fresh ``account.password`` with ``srp_B``/``srp_id`` (what ``account.getPassword`` answers)."""
        self._issued += 1
        rng = rng_for(self._seed, "srp", self._issued)
        b = int.from_bytes(rng.randbytes(SIZE), "big") % PRIME
        big_b = _pad((_K * self._verifier + pow(GENERATOR, b, PRIME)) % PRIME)
        srp_id = rng.getrandbits(63)
        self._open[srp_id] = _Challenge(b, big_b)
        return types.account.Password(
            new_algo=types.PasswordKdfAlgoUnknown(), new_secure_algo=types.SecurePasswordKdfAlgoUnknown(),
            secure_random=rng.randbytes(32), has_password=True, current_algo=self.algo,
            srp_B=big_b, srp_id=srp_id,
        )

    def check(self, srp_id: int, a_bytes: bytes, m1: bytes) -> bool | None:
        """Whether the proof ``M1`` for challenge ``srp_id`` shows the right password; ``None`` for an
        unknown (or already used) challenge."""
        challenge = self._open.pop(srp_id, None)
        if challenge is None:
            return None
        big_a = int.from_bytes(a_bytes, "big")
        if not 1 < big_a < PRIME - 1:
            return False
        u = int.from_bytes(_h(_pad(big_a), challenge.big_b), "big")
        shared = pow(big_a * pow(self._verifier, u, PRIME) % PRIME, challenge.b, PRIME)
        key = _h(_pad(shared))
        p_xor_g = bytes(x ^ y for x, y in zip(_h(_pad(PRIME)), _h(_pad(GENERATOR)), strict=True))
        expected = _h(p_xor_g, _h(self.salt1), _h(self.salt2), _pad(big_a), challenge.big_b, key)
        return hmac.compare_digest(expected, m1)
