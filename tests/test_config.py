"""Config: defaults, validation errors that name the key, and the file written by init."""

from __future__ import annotations

from pathlib import Path

import pytest

from tobs_sync.config import DEFAULT_CONFIG, Settings, load_settings
from tobs_sync.errors import ConfigError


def write_config(vault: Path, text: str) -> None:
    (vault / ".tobs").mkdir(exist_ok=True)
    (vault / ".tobs" / "config.toml").write_text(text, encoding="utf-8")


def test_missing_config_gives_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert settings == Settings(vault_root=tmp_path.resolve())


def test_default_config_file_parses_to_the_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, DEFAULT_CONFIG)
    assert load_settings(tmp_path) == Settings(vault_root=tmp_path.resolve())


def test_values_are_read(tmp_path: Path) -> None:
    write_config(
        tmp_path, '[vault]\nnote_path = "Chats/{chat}/{year}/{date} {time} {id}.md"\ntimezone = "Europe/Berlin"\n'
    )
    settings = load_settings(tmp_path)
    assert settings.note_path == "Chats/{chat}/{year}/{date} {time} {id}.md"
    assert str(settings.timezone) == "Europe/Berlin"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[vault]\nnote_pth = 'x/{id}.md'\n", "vault.note_pth: unknown key (did you mean 'note_path'?)"),
        ("[vualt]\n", "vualt: unknown section (did you mean 'vault'?)"),
        ("vault = 3\n", "vault: must be a table"),
        ("[vault]\nnote_path = 5\n", "vault.note_path: must be a string, not int"),
        ("[vault]\nnote_path = '{chat}/{date}.md'\n", "vault.note_path: must contain {id}"),
        ("[vault]\nnote_path = '{chat}/{nope} {id}.md'\n", "vault.note_path: unknown field {nope}"),
        ("[vault]\nnote_path = '{chat.__class__} {id}.md'\n", "vault.note_path: unknown field {chat.__class__}"),
        ("[vault]\nnote_path = '{id:>10}.md'\n", "vault.note_path: {id} takes no format options"),
        ("[vault]\nnote_path = '{id}.txt'\n", "vault.note_path: must end in .md"),
        ("[vault]\nnote_path = '../{id}.md'\n", "vault.note_path: '..' must be a folder inside the vault"),
        ("[vault]\nnote_path = '{id'\n", "vault.note_path:"),
        ("[vault]\nchat_note_path = '{chat}/{id}.md'\n", "vault.chat_note_path: unknown field {id}"),
        ("[vault]\ntemplates = '/etc'\n", "vault.templates: '/etc' must be a folder inside the vault"),
        ("[vault]\nattachments = '../media'\n", "vault.attachments:"),
        ("[vault]\ntimezone = 'Mars/Olympus'\n", "vault.timezone: unknown time zone 'Mars/Olympus'"),
        ("[vault]\nobsidian_config = 'obsidian'\n", "vault.obsidian_config:"),
        ("[vault\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    write_config(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path)
    assert message in str(error.value)


def test_vault_that_is_not_a_folder_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        load_settings(file)


@pytest.mark.parametrize("rule", ["", "/", "./", "./assets", "Media/Telegram"])
def test_attachment_rules_are_accepted(tmp_path: Path, rule: str) -> None:
    write_config(tmp_path, f"[vault]\nattachments = '{rule}'\n")
    assert load_settings(tmp_path).attachments == rule


def test_telegram_and_media_sections_are_read(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[telegram]\napi_id = 12345\napi_hash = "abc"\nchats = ["channels", "@news", -1001234, "title:Fam*"]\n'
        'exclude = ["saved"]\nflood_max_wait_s = 120\ndownload_workers_per_dc = 3\n'
        '[media]\nkinds = ["photo", "video"]\nmax_mb = { video = 200 }\n',
    )
    settings = load_settings(tmp_path)
    assert settings.telegram.api_id == 12345
    assert settings.telegram.chats == ("channels", "@news", -1001234, "title:Fam*")
    assert settings.telegram.flood_max_wait_s == 120.0
    assert "abc" not in repr(settings)
    assert settings.media.skip_reason("voice", 10) == "voice files are not stored (media.kinds)"
    assert settings.media.skip_reason("video", 250_000_000) == "larger than 200 MB (media.max_mb.video)"
    assert settings.media.skip_reason("video", 150_000_000) is None
    assert settings.media.skip_reason("hologram", 1) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[telegram]\napi_id = 'x'\n", "telegram.api_id: must be a number, not str"),
        ("[telegram]\napi_id = -1\n", "telegram.api_id: must be at least 0"),
        ("[telegram]\nchats = 'all'\n", "telegram.chats: must be a list"),
        ("[telegram]\nchats = ['everything']\n", "telegram.chats: 'everything' is not a chat selector"),
        ("[telegram]\nchats = [true]\n", "telegram.chats: True is neither"),
        ("[telegram]\ntakeout = 'yes'\n", "telegram.takeout: must be true or false, not str"),
        ("[telegram]\nstall_timeout_s = 0\n", "telegram.stall_timeout_s: must be at least 1"),
        (
            "[telegram]\ndownload_workers_per_dc = 100\n",
            "telegram.download_workers_per_dc: must be at least 1 and at most 64",
        ),
        ("[telegram]\napi_hsh = 'x'\n", "telegram.api_hsh: unknown key (did you mean 'api_hash'?)"),
        ("[media]\nkinds = ['photos']\n", "media.kinds: unknown kind 'photos' (did you mean 'photo'?)"),
        ("[media]\nmax_mb = { vidoe = 3 }\n", "media.max_mb.vidoe: unknown kind (did you mean 'video'?)"),
        ("[media]\nmax_mb = { video = -3 }\n", "media.max_mb.video: must be at least 0"),
        ("[media]\nmax_mb = 5\n", "media.max_mb: must be a table"),
    ],
)
def test_bad_telegram_and_media_keys_are_named(tmp_path: Path, text: str, message: str) -> None:
    write_config(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path)
    assert message in str(error.value)
