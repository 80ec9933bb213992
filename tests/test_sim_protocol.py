"""The simulated Telegram's protocol surface: 2FA login with SRP, PHONE_MIGRATE, contacts, TL
strictness, the rate policy and a client that starts disconnected -- each through a real
``TelegramClient`` and, where it matters, the production sync and login code."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from telethon import errors, utils
from telethon.tl import functions, types
from virtualtime import run_virtual

from tobs_sync.app import App
from tobs_sync.config import load_settings
from tobs_sync.errors import ConfigError, SourceError
from tobs_sync.session import LoginPrompts
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sim.ratelimit import TELEGRAM_BUDGETS, RatePolicy, policy_for
from tobs_sync.sim.rpc import RpcFault
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.sources.telegram_login import LOGIN_ATTEMPTS, log_in
from tobs_sync.sync import SyncReport

SMALL = "chats=1,messages=1,media=0"
PASSWORD = "correct horse battery staple"


class Asked:
    """Login prompts that record what was asked and answer from lists."""

    def __init__(self, code: str, passwords: list[str]) -> None:
        self.asked: list[str] = []
        self._code = code
        self._passwords = iter(passwords)

    def prompts(self) -> LoginPrompts:
        def phone() -> str:
            self.asked.append("phone")
            return "+44 20 7946 0000"

        def code() -> str:
            self.asked.append("code")
            return self._code

        def password() -> str:
            self.asked.append("password")
            return next(self._passwords)

        return LoginPrompts(phone=phone, code=code, password=password)


def full_name(sim: SimulatedTelegram) -> str:
    return " ".join(p for p in (sim.me.first_name, sim.me.last_name) if p)


# region 2FA


def test_two_step_login_with_the_right_password_passes_the_srp_check() -> None:
    sim = SimulatedTelegram(SMALL, logged_in=False, password=PASSWORD)
    answers = Asked(sim.login_code, [PASSWORD])
    who = asyncio.run(log_in(sim.client(raise_last_call_error=True), answers.prompts(), timeout_s=30))
    assert who == full_name(sim)
    assert answers.asked == ["phone", "code", "password"]
    assert sim.logged_in and sim.password_checks == 1
    assert sim.stats.errors[("SignIn", "SESSION_PASSWORD_NEEDED")] == 1
    assert sim.stats.count("GetPassword") == 1


def test_two_step_login_takes_the_password_from_tobs_password() -> None:
    sim = SimulatedTelegram(SMALL, logged_in=False, password=PASSWORD)

    def ask(question: str) -> str:
        raise AssertionError(f"nothing should be asked, got {question!r}")

    environ = {"TOBS_PHONE": "+44 20 7946 0000", "TOBS_CODE": sim.login_code, "TOBS_PASSWORD": PASSWORD}
    prompts = LoginPrompts.from_environment(ask, ask, environ)
    assert asyncio.run(log_in(sim.client(raise_last_call_error=True), prompts, timeout_s=30)) == full_name(sim)
    assert sim.logged_in


def test_a_wrong_password_is_asked_again_and_the_right_one_then_logs_in() -> None:
    sim = SimulatedTelegram(SMALL, logged_in=False, password=PASSWORD)
    answers = Asked(sim.login_code, ["hunter2", PASSWORD])
    asyncio.run(log_in(sim.client(raise_last_call_error=True), answers.prompts(), timeout_s=30))
    assert answers.asked == ["phone", "code", "password", "password"]
    assert sim.logged_in
    assert sim.stats.errors[("CheckPassword", "PASSWORD_HASH_INVALID")] == 1


def test_wrong_passwords_are_asked_at_most_three_times_then_a_clear_error() -> None:
    sim = SimulatedTelegram(SMALL, logged_in=False, password=PASSWORD)
    answers = Asked(sim.login_code, ["hunter2", "Hunter2", PASSWORD.upper(), PASSWORD])
    client = sim.client(raise_last_call_error=True)
    with pytest.raises(SourceError, match="two-step verification password was wrong 3 times"):
        asyncio.run(log_in(client, answers.prompts(), timeout_s=30))
    assert answers.asked.count("password") == LOGIN_ATTEMPTS == 3
    assert sim.password_checks == 3
    assert sim.stats.errors[("CheckPassword", "PASSWORD_HASH_INVALID")] == 3
    assert not sim.logged_in and not client.is_connected()


def test_a_password_proof_is_bound_to_its_challenge() -> None:
    """The server really checks the SRP proof: a proof for one challenge fails on another, and a
    challenge answers once (a replayed proof is refused)."""
    from telethon.password import compute_check

    sim = SimulatedTelegram(SMALL, logged_in=False, password=PASSWORD)
    client = sim.client(raise_last_call_error=True)

    async def run() -> None:
        first = await client(functions.account.GetPasswordRequest())
        second = await client(functions.account.GetPasswordRequest())
        assert first.srp_B != second.srp_B
        proof = compute_check(first, PASSWORD)
        forged = types.InputCheckPasswordSRP(second.srp_id, proof.A, proof.M1)
        with pytest.raises(errors.PasswordHashInvalidError):
            await client(functions.auth.CheckPasswordRequest(forged))
        await client(functions.auth.CheckPasswordRequest(proof))
        with pytest.raises(errors.SrpIdInvalidError):
            await client(functions.auth.CheckPasswordRequest(proof))

    asyncio.run(run())
    assert sim.logged_in


# endregion

# region PHONE_MIGRATE


def test_an_account_homed_on_another_dc_is_followed_there_at_login(tmp_path: Path) -> None:
    sim = SimulatedTelegram("chats=1,messages=1,media=0,dcs=4,home_dc=4", logged_in=False)
    session = tmp_path / "account.session"
    client = sim.client(session_file=session, raise_last_call_error=True)
    assert client.session.dc_id == 2  # where every new Telethon session starts
    answers = Asked(sim.login_code, [])
    assert asyncio.run(log_in(client, answers.prompts(), timeout_s=30)) == full_name(sim)
    assert sim.stats.errors[("SendCode", "PHONE_MIGRATE_4")] == 1
    assert sim.stats.count("SendCode", 2) == 1 and sim.stats.count("SendCode", 4) == 1
    assert sim.stats.count("SignIn", 4) == 1 and sim.stats.count("SignIn", 2) == 0
    assert answers.asked == ["phone", "code"]
    with sqlite3.connect(session) as db:
        assert db.execute("SELECT dc_id FROM sessions").fetchall() == [(4,)]


def test_home_dc_must_be_one_of_the_data_centres() -> None:
    assert parse_spec("dcs=4,home_dc=3").home_dc == 3
    with pytest.raises(ConfigError, match="'home_dc' must be between 0 and 3"):
        parse_spec("dcs=3,home_dc=4")


# endregion

# region contacts and TL strictness


def test_get_entity_with_a_phone_number_finds_the_contact() -> None:
    sim = SimulatedTelegram("chats=4,messages=1,media=0")
    contact = sim.contacts()[0]
    assert contact.phone and contact.phone.isdigit()

    async def run() -> Any:
        return await sim.client(raise_last_call_error=True).get_entity(contact.phone)

    found = asyncio.run(run())
    assert isinstance(found, types.User) and found.id == contact.id
    assert sim.stats.count("GetContacts") == 1


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("GetChannels",
         lambda peer: functions.channels.GetChannelsRequest(
             [types.InputPeerChannel(peer.channel_id, peer.access_hash)])),
        ("GetMessages",
         lambda peer: functions.channels.GetMessagesRequest(
             types.InputPeerChannel(peer.channel_id, peer.access_hash), [types.InputMessageID(1)])),
        ("GetHistory",
         lambda peer: functions.messages.GetHistoryRequest(
             types.InputChannel(peer.channel_id, peer.access_hash), 0, None, 0, 10, 0, 0, 0)),
        ("GetUsers",
         lambda peer: functions.users.GetUsersRequest([types.InputPeerSelf()])),
    ],
)
def test_the_server_refuses_constructors_the_schema_does_not_allow(name: str, build: Any) -> None:
    """Sent as is (no ``resolve``, which would convert the argument), Telegram refuses these."""
    sim = SimulatedTelegram("chats=1,messages=5,media=0")
    peer = sim.input_peer(sim.chat_ids[0])
    assert isinstance(peer, types.InputPeerChannel)
    client = sim.client(raise_last_call_error=True)

    async def run() -> None:
        with pytest.raises(errors.InputConstructorInvalidError):
            await client._sender.send(build(peer))

    asyncio.run(run())
    assert sim.stats.errors == {(name, "INPUT_CONSTRUCTOR_INVALID"): 1}


def test_telethon_converts_peers_before_sending_so_the_public_api_passes_the_check() -> None:
    sim = SimulatedTelegram("chats=1,messages=5,media=0")
    peer = sim.input_peer(sim.chat_ids[0])

    async def run() -> Any:
        return await sim.client(raise_last_call_error=True)(functions.channels.GetChannelsRequest([peer]))

    chats = asyncio.run(run()).chats
    assert [utils.get_peer_id(chat) for chat in chats] == [sim.chat_ids[0]]
    assert sim.stats.errors == {}


# endregion

# region rate policy


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_budget_answers_flood_wait_for_the_rest_of_its_window() -> None:
    clock = FakeClock()
    policy = RatePolicy(clock=clock)
    policy.set_budget("history", ["messages.GetHistory"], requests=3, window_s=30)
    for _ in range(3):
        policy.admit("GetHistory", "messages.GetHistory")
    clock.now = 12.5
    with pytest.raises(RpcFault, match="FLOOD_WAIT_18"):  # 17.5 s left, rounded up
        policy.admit("GetHistory", "messages.GetHistory")
    policy.admit("GetDialogs", "messages.GetDialogs")  # other requests have their own budgets
    clock.now = 30.0
    policy.admit("GetHistory", "messages.GetHistory")  # a new window
    assert policy.floods == {"GetHistory": 1}


def test_budgets_name_real_requests_and_are_off_unless_asked_for() -> None:
    with pytest.raises(ValueError, match="unknown requests: GetHistry"):
        RatePolicy().set_budget("typo", ["GetHistry"], requests=1, window_s=1)
    assert not policy_for("off").enabled
    assert policy_for("telegram").budgets == TELEGRAM_BUDGETS
    assert not SimulatedTelegram(SMALL).rate.enabled
    assert parse_spec("rate=telegram").rate == "telegram"
    assert parse_spec(parse_spec("rate=telegram,home_dc=1").to_text()) == parse_spec("rate=telegram,home_dc=1")
    with pytest.raises(ConfigError, match="key 'rate' must be one of off, telegram"):
        parse_spec("rate=fast")


def sync_pass(vault: Path, sim: SimulatedTelegram, **client_options: Any) -> tuple[SyncReport, float]:
    """One pass of the production sync over ``sim`` on a virtual clock; returns the report and the
    seconds of (virtual) time it took."""

    async def run() -> tuple[SyncReport, float]:
        loop = asyncio.get_running_loop()
        client = sim.client(raise_last_call_error=True, **client_options)
        with App.open(vault) as app:
            async with TelegramSource(client, load_settings(vault).telegram, peers=app.store) as source:
                report = await app.sync_source(source)
        return report, loop.time()

    return run_virtual(run())


def test_a_pass_under_a_history_budget_provokes_the_flood_waits_its_paging_costs(vault: Path) -> None:
    """One channel of 900 messages: Telethon reads pages of 100 (9 pages and the empty page that ends
    them), then the source checks once for newer messages: 11 history requests against a budget of
    5 per 30 s (the ``rate=telegram`` history budget, made smaller), so two FLOOD_WAIT_30 answers,
    slept through on the virtual clock, and nothing lost."""
    messages, per_window, window_s = 900, 5, 30.0
    sim = SimulatedTelegram(f"chats=1,messages={messages},media=0,seed=4,rate=telegram")
    sim.rate.set_budget("history", TELEGRAM_BUDGETS["history"].methods, per_window, window_s)
    history_requests = -(-messages // 100) + 1 + 1
    expected_waits = (history_requests - 1) // per_window
    report, elapsed = sync_pass(vault, sim)
    assert report.messages == len(sim.messages(sim.chat_ids[0])) and report.deferred == []
    assert sim.flood_waits == expected_waits == 2
    assert sim.stats.errors == {("GetHistory", f"FLOOD_WAIT_{window_s:.0f}"): expected_waits}
    assert sim.stats.count("GetHistory") == history_requests + expected_waits  # each refused page asked again
    assert elapsed == expected_waits * window_s


def test_telegrams_history_budget_lets_a_3000_message_backfill_through_in_one_window() -> None:
    """30 pages of 100 per 30 s (Telethon's "3000 messages within 30 seconds"): the 31st page waits."""
    sim = SimulatedTelegram("chats=1,messages=3100,media=0,seed=4,rate=telegram")
    peer = sim.input_peer(sim.chat_ids[0])
    client = sim.client(raise_last_call_error=True, flood_sleep_threshold=0)

    async def run() -> list[int]:
        ids: list[int] = []
        with pytest.raises(errors.FloodWaitError) as flood:
            async for message in client.iter_messages(peer, reverse=True, wait_time=0):
                ids.append(message.id)
        assert flood.value.seconds == 30
        return ids

    assert len(run_virtual(run())) == 3000
    assert sim.flood_waits == 1


def test_without_a_rate_policy_the_same_pass_provokes_no_flood_wait(vault: Path) -> None:
    sim = SimulatedTelegram("chats=1,messages=900,media=0,seed=4")
    report, elapsed = sync_pass(vault, sim)
    assert report.messages == 900 and sim.flood_waits == 0 and elapsed == 0


# endregion

# region the real connection path


def test_a_sync_on_a_client_that_starts_disconnected_connects_and_saves_its_session(
    vault: Path, tmp_path: Path
) -> None:
    sim = SimulatedTelegram("chats=3,messages=120,media=0.2,seed=5")
    session = tmp_path / "account.session"
    assert not sim.client(session_file=tmp_path / "probe.session", connected=False).is_connected()
    report, _ = sync_pass(vault, sim, session_file=session, connected=False)
    assert report.messages == sum(len(sim.messages(chat)) for chat in sim.chat_ids)
    # Telethon's own start-up ran: InitConnection(GetConfig), get_me, GetState for the update loop.
    assert sim.stats.count("GetConfig") == 1 and sim.stats.count("GetState") >= 1
    assert sim.stats.connections_opened[sim.home_dc] == 1
    with sqlite3.connect(session) as db:
        (pts,) = db.execute("SELECT pts FROM update_state WHERE id = 0").fetchone()
        entity_ids = {row[0] for row in db.execute("SELECT id FROM entities")}
    assert pts > 0  # the account's update state, saved on disconnect for the next run's catch-up
    assert set(sim.chat_ids) <= entity_ids


def test_the_update_loop_asks_for_channel_differences_when_channels_stay_quiet() -> None:
    """Telethon's MessageBox gives every channel it knows a 15-minute deadline; on a virtual clock
    the loop's periodic getChannelDifference calls reach the simulator."""
    sim = SimulatedTelegram("chats=3,messages=20,media=0,seed=5")
    channels = [chat for chat in sim.chat_ids if sim.kind(chat) in ("channel", "megagroup")]
    client = sim.client(connected=False, raise_last_call_error=True)
    seen: list[int] = []

    async def run() -> None:
        await client.connect()
        await client.get_dialogs()
        before = sim.stats.count("GetChannelDifference")
        await asyncio.sleep(16 * 60)
        seen.append(sim.stats.count("GetChannelDifference") - before)
        await client.disconnect()

    run_virtual(run())
    assert channels and seen[0] >= len(channels)


# endregion
