"""Login secrets: credentials from the environment, a private session folder, nothing logged."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tobs_sync.app import open_client
from tobs_sync.config import Settings, TelegramSettings
from tobs_sync.errors import ConfigError
from tobs_sync.session import (
    InsecurePermissions,
    LoginPrompts,
    api_credentials,
    check_private,
    ensure_private_dir,
    session_dir,
    session_path,
)

API_HASH = "0123456789abcdef0123456789abcdef"


def settings_with(vault: Path, **telegram: Any) -> Settings:
    return Settings(vault_root=vault, telegram=TelegramSettings(**telegram))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_come_from_the_environment_first(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, api_id=1, api_hash="from-config")
    credentials = api_credentials(settings, {"TOBS_API_ID": "4242", "TOBS_API_HASH": API_HASH})
    assert (credentials.api_id, credentials.api_hash) == (4242, API_HASH)
    assert API_HASH not in repr(credentials)
    assert api_credentials(settings, {}).api_hash == "from-config"


@pytest.mark.parametrize(
    ("telegram", "environ", "message"),
    [
        ({}, {}, "telegram.api_id: not set; set TOBS_API_ID"),
        ({"api_id": 5}, {}, "telegram.api_hash: not set; set TOBS_API_HASH"),
        ({}, {"TOBS_API_ID": "12ab", "TOBS_API_HASH": "x"}, "TOBS_API_ID: must be a number"),
    ],
)
def test_missing_or_bad_credentials_are_named(
    tmp_path: Path, telegram: dict[str, Any], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        api_credentials(settings_with(tmp_path, **telegram), environ)


def test_session_lives_outside_the_vault(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    with pytest.raises(ConfigError, match="inside the vault"):
        session_dir(settings_with(vault, session_dir=str(vault / "secrets")))
    outside = settings_with(vault, session_dir=str(tmp_path / "sessions"))
    assert session_path(outside).parent == tmp_path / "sessions"
    assert session_path(outside) != session_path(settings_with(tmp_path / "other", session_dir=str(tmp_path)))


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
@pytest.mark.parametrize("link_to", ["vault", "vault/secrets", "vault/secrets/deeper"])
def test_session_folder_reached_through_a_symlink_into_the_vault_is_refused(tmp_path: Path, link_to: str) -> None:
    vault = tmp_path / "vault"
    (vault / "secrets").mkdir(parents=True)
    (tmp_path / "innocent").symlink_to(tmp_path / link_to, target_is_directory=True)
    with pytest.raises(ConfigError, match=r"inside the vault \(through a symlink: it is .*vault"):
        session_dir(settings_with(vault, session_dir=str(tmp_path / "innocent")))


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_session_folder_below_a_symlinked_parent_into_the_vault_is_refused(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    (vault / "Telegram").mkdir(parents=True)
    (tmp_path / "config").symlink_to(vault / "Telegram", target_is_directory=True)
    not_yet_created = tmp_path / "config" / "tobs-sync" / "sessions"
    with pytest.raises(ConfigError, match="inside the vault"):
        session_dir(settings_with(vault, session_dir=str(not_yet_created)))


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_vault_reached_through_a_symlink_still_guards_its_session(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (tmp_path / "vault-link").symlink_to(vault, target_is_directory=True)
    with pytest.raises(ConfigError, match="inside the vault"):
        session_dir(settings_with(tmp_path / "vault-link", session_dir=str(vault / "secrets")))


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_session_folder_symlinked_outside_the_vault_is_accepted_and_checked_where_it_points(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    private = tmp_path / "private"
    ensure_private_dir(private)
    (tmp_path / "sessions").symlink_to(private, target_is_directory=True)
    folder = session_dir(settings_with(vault, session_dir=str(tmp_path / "sessions")))
    assert folder == tmp_path / "sessions"
    assert check_private(folder) == []
    private.chmod(0o755)
    with pytest.raises(InsecurePermissions, match="mode 755"):
        check_private(folder)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_private_folder_is_0700_and_session_file_0600(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    vault = tmp_path / "vault"
    vault.mkdir()
    settings = settings_with(vault, api_id=4242, api_hash=API_HASH, session_dir=str(tmp_path / "sessions"))
    old_umask = os.umask(0o022)
    try:
        client = open_client(settings)
    finally:
        os.umask(old_umask)
    client.session.save()
    client.session.close()
    folder = tmp_path / "sessions"
    assert mode(folder) == 0o700
    files = list(folder.iterdir())
    assert files, "Telethon created the session file"
    assert all(mode(f) == 0o600 for f in files)
    assert API_HASH not in caplog.text


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_readable_session_is_refused_with_a_fix(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    ensure_private_dir(folder)
    session = folder / "vault-x.session"
    session.write_bytes(b"auth key")
    session.chmod(0o644)
    with pytest.raises(InsecurePermissions, match=r"chmod 600 .*--repair-permissions"):
        check_private(folder)
    assert mode(session) == 0o644


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_readable_folder_is_refused_and_can_be_repaired(tmp_path: Path, caplog: Any) -> None:
    folder = tmp_path / "sessions"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    (folder / "s.session").write_bytes(b"k")
    (folder / "s.session").chmod(0o640)
    with pytest.raises(InsecurePermissions, match="mode 755"):
        check_private(folder)
    repaired = check_private(folder, repair=True)
    assert len(repaired) == 2
    assert mode(folder) == 0o700
    assert mode(folder / "s.session") == 0o600
    assert "repaired permissions" in caplog.text
    assert check_private(folder) == []


def test_login_answers_come_from_the_environment_or_the_prompt() -> None:
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        return " +00 123 "

    prompts = LoginPrompts.from_environment(ask, ask, {"TOBS_CODE": "12345", "TOBS_PASSWORD": ""})
    assert prompts.code() == "12345"
    assert prompts.phone() == "+00 123"
    assert prompts.password() == "+00 123"
    assert len(asked) == 2


def test_login_asks_for_phone_and_code_and_logs_no_secret(caplog: Any) -> None:
    import asyncio

    from tobs_sync.sim import SimulatedTelegram, parse_spec
    from tobs_sync.sources.telegram_login import log_in

    sim = SimulatedTelegram(parse_spec("chats=1,messages=1,media=0"), logged_in=False)
    asked: list[str] = []

    def answer(what: str, value: str) -> Any:
        def give() -> str:
            asked.append(what)
            return value

        return give

    prompts = LoginPrompts(
        phone=answer("phone", "+00 123 4567"), code=answer("code", sim.login_code), password=answer("password", "x")
    )
    caplog.set_level(logging.DEBUG)
    who = asyncio.run(log_in(sim.client(raise_last_call_error=True), prompts, timeout_s=30))
    assert asked == ["phone", "code"]
    assert sim.logged_in
    assert who == " ".join(p for p in (sim.me.first_name, sim.me.last_name) if p)
    assert "123 4567" not in caplog.text and sim.login_code not in caplog.text


def test_sync_without_login_says_how_to_log_in(vault: Path) -> None:
    import asyncio

    from tobs_sync.errors import SourceError
    from tobs_sync.sim import SimulatedTelegram, parse_spec
    from tobs_sync.sources.telegram import TelegramSource

    sim = SimulatedTelegram(parse_spec("chats=1,messages=1,media=0"), logged_in=False)

    client = sim.client(raise_last_call_error=True)

    async def run() -> None:
        async with TelegramSource(client, TelegramSettings()):
            pass

    with pytest.raises(SourceError, match="tobs-sync login --vault"):
        asyncio.run(run())
    assert not client.is_connected()  # no update loop left running after the error


@pytest.mark.parametrize(("phone", "codes", "refusal", "message"), [
    ("not a number", [], None, "logging in: that is not a phone number; give it in international format"),
    ("+00 123 4567", [], "PHONE_NUMBER_BANNED", r"logging in: Telegram refused it \(.*banned"),
    ("+00 123 4567", ["11111", "22222", "33333"], None, "logging in: 3 consecutive sign-in attempts failed"),
])
def test_login_refused_is_a_clear_error_and_never_asks_forever(
    phone: str, codes: list[str], refusal: str | None, message: str
) -> None:
    import asyncio

    from tobs_sync.errors import SourceError
    from tobs_sync.sim import SimulatedTelegram, parse_spec
    from tobs_sync.sources.telegram_login import log_in

    sim = SimulatedTelegram(parse_spec("chats=1,messages=1,media=0"), logged_in=False)
    if refusal:
        sim.faults.rpc_error("SendCode", 400, refusal)
    client = sim.client(raise_last_call_error=True)
    asked: list[str] = []

    def ask_phone() -> str:
        asked.append(phone)
        return phone

    answers = iter(codes)
    prompts = LoginPrompts(phone=ask_phone, code=lambda: next(answers), password=lambda: "")
    with pytest.raises(SourceError, match=message):
        asyncio.run(log_in(client, prompts, timeout_s=30))
    assert not sim.logged_in and not client.is_connected()
    assert len(asked) <= 3


def test_login_without_a_network_is_a_clear_error() -> None:
    import asyncio

    from tobs_sync.errors import SourceError
    from tobs_sync.sim import SimulatedTelegram, parse_spec
    from tobs_sync.sources.telegram_login import log_in

    sim = SimulatedTelegram(parse_spec("chats=1,messages=1,media=0"), logged_in=False)
    sim.faults.refuse_connections(sim.home_dc)
    client = sim.client(raise_last_call_error=True)

    async def run() -> str:
        await client.disconnect()  # a real client starts disconnected
        prompts = LoginPrompts(phone=lambda: "+00 1", code=lambda: "1", password=lambda: "")
        return await log_in(client, prompts, timeout_s=30)

    with pytest.raises(SourceError, match=r"connecting to Telegram: .* \(is the network up\?\)"):
        asyncio.run(run())


def test_login_of_a_session_already_logged_in_asks_nothing() -> None:
    import asyncio

    from tobs_sync.sim import SimulatedTelegram, parse_spec
    from tobs_sync.sources.telegram_login import log_in

    sim = SimulatedTelegram(parse_spec("chats=1,messages=1,media=0"))

    def never() -> str:
        raise AssertionError("nothing should be asked")

    client = sim.client(raise_last_call_error=True)
    who = asyncio.run(log_in(client, LoginPrompts(phone=never, code=never, password=never), timeout_s=30))
    assert who == " ".join(p for p in (sim.me.first_name, sim.me.last_name) if p)
    assert not client.is_connected()
