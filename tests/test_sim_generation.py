"""The simulated account is what its spec and seed make it, and stays so while generation gets faster.

``SimRandom`` (the generator behind every simulated choice) draws exactly what ``random.Random``
draws; a pinned digest of a generated account (messages, entities, ids, dates, live messages)
catches any change to what a spec produces. The digest is over Telethon's TL bytes, so a Telethon
layer upgrade changes it too (then it is re-pinned after checking the change is only that).
"""

from __future__ import annotations

import hashlib
import random

import pytest

from tobs_sync.sim.account import Account
from tobs_sync.sim.content import SimRandom, make_text, rng_for, utf16_len
from tobs_sync.sim.spec import parse_spec

PINNED_SPEC = "chats=7,messages=150,media=0,comments=2,seed=3"
PINNED_DIGEST = "4234c281257c2fc747c79413bf4cb3313233f950a5e09d86d34569005c6b96f3"


def _account_digest(spec: str) -> str:
    account = Account(parse_spec(spec))
    digest = hashlib.sha256()
    for chat in account.by_marked.values():
        identity = (chat.kind, chat.raw_id, chat.access_hash, chat.title, sorted(chat.topics.items()))
        digest.update(repr(identity).encode())
        for message in chat.messages:
            digest.update(bytes(message))
    for user_id in sorted(account.users):
        digest.update(bytes(account.users[user_id]))
    for chat in account.chats:
        digest.update(bytes(account.new_message(chat)))
    return digest.hexdigest()


def test_a_spec_and_seed_keep_generating_the_same_account() -> None:
    assert _account_digest(PINNED_SPEC) == PINNED_DIGEST


@pytest.mark.parametrize("seed", [0, 1, 7, 2**100 + 3, 123_456_789])
def test_sim_random_draws_exactly_what_random_random_draws(seed: int) -> None:
    fast, standard = SimRandom(seed), random.Random(seed)  # nosec B311
    assert fast.getstate() == standard.getstate()
    sizes = (1, 2, 3, 5, 13, 30, 64, 100, 1000, 1 << 24, 10**7, (1 << 63) + 5)
    for round_ in range(300):
        n = sizes[round_ % len(sizes)]
        sequence = list(range(n if n <= 1000 else 3))
        assert fast.choice(sequence) == standard.choice(sequence)
        assert fast.randint(-4, n) == standard.randint(-4, n)
        assert fast.randrange(n) == standard.randrange(n)
        assert fast.randrange(3, n + 4) == standard.randrange(3, n + 4)
        assert fast.random() == standard.random()
        assert fast.sample(range(50), 3) == standard.sample(range(50), 3)
    assert fast.getstate() == standard.getstate()


def test_sim_random_refuses_what_random_random_refuses() -> None:
    fast = SimRandom(5)
    with pytest.raises(IndexError):
        fast.choice([])
    with pytest.raises(ValueError, match="empty range"):
        fast.randint(3, 2)
    with pytest.raises(ValueError, match="empty range"):
        fast.randrange(0)


def test_rng_for_depends_only_on_seed_and_labels() -> None:
    assert rng_for(4, "msg", 1, 2).getstate() == rng_for(4, "msg", 1, 2).getstate()
    assert rng_for(4, "msg", 1, 2).random() != rng_for(4, "msg", 1, 3).random()


def test_text_entities_are_measured_in_utf16_code_units() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("日本語") == 3
    assert utf16_len("😀 a") == 4
    for index in range(200):
        text, entities = make_text(rng_for(9, "text", index), [])
        for entity in entities:
            assert entity.offset >= 0 and entity.offset + entity.length <= utf16_len(text)
