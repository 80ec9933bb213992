"""Templates are read only as regular files inside the templates folders: no symlink, no escape."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE_EXPORT
from vaultcheck import vault_files

from tobs_sync.app import import_export
from tobs_sync.cli import main
from tobs_sync.errors import TemplateError, VaultError
from tobs_sync.render import MESSAGE_TEMPLATE, Renderer

IDENTITY = {"tg_chat_id": -1001, "tg_message_id": 5}
SECRET = "secret bytes that must never reach a note"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside every templates folder (think ``/etc/...`` or ``~/.ssh/...``)."""
    path = tmp_path / "outside" / "secret.md"
    path.parent.mkdir()
    path.write_text(SECRET, encoding="utf-8")
    return path


@pytest.fixture
def overrides(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    return folder


def render_with(overrides: Path, message_template: str) -> bytes:
    (overrides / MESSAGE_TEMPLATE).write_text(message_template, encoding="utf-8")
    return Renderer(overrides).render(MESSAGE_TEMPLATE, {}, IDENTITY)


def test_included_regular_files_inside_the_folder_are_read(overrides: Path) -> None:
    (overrides / "parts").mkdir()
    (overrides / "parts" / "footer.md").write_text("the footer", encoding="utf-8")
    rendered = render_with(overrides, 'body {% include "parts/footer.md" %}').decode()
    assert rendered.endswith("body the footer\n\n%% tobs:end %%\n")


def test_an_included_symlink_to_a_file_outside_is_refused(overrides: Path, secret: Path) -> None:
    (overrides / "footer.md").symlink_to(secret)
    with pytest.raises(TemplateError) as error:
        render_with(overrides, 'body\n{% include "footer.md" %}\n')
    message = str(error.value)
    assert "message.md, line 2" in message
    assert "'footer.md'" in message and "is a symlink" in message
    assert SECRET not in message


def test_a_symlink_to_a_file_inside_the_folder_is_refused_too(overrides: Path) -> None:
    (overrides / "real.md").write_text("real", encoding="utf-8")
    (overrides / "alias.md").symlink_to(overrides / "real.md")
    with pytest.raises(TemplateError, match=r"'alias\.md'.*is a symlink"):
        render_with(overrides, '{% include "alias.md" %}')


def test_a_symlinked_folder_on_the_way_is_refused(overrides: Path, secret: Path) -> None:
    (overrides / "parts").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(TemplateError) as error:
        render_with(overrides, '{% include "parts/secret.md" %}')
    assert "parts" in str(error.value) and "is a symlink" in str(error.value)
    assert SECRET not in str(error.value)


@pytest.mark.parametrize("name", ["../outside/secret.md", "parts/../../outside/secret.md", "./footer.md", "a//b.md"])
def test_relative_names_that_leave_or_bend_the_folder_are_refused(overrides: Path, secret: Path, name: str) -> None:
    (overrides / "parts").mkdir()
    with pytest.raises(TemplateError, match=r"'\.', '\.\.' part|empty"):
        render_with(overrides, f'{{% include "{name}" %}}')


def test_an_absolute_name_is_refused_even_for_a_readable_file(overrides: Path, secret: Path) -> None:
    with pytest.raises(TemplateError, match="absolute path") as error:
        render_with(overrides, f'{{% include "{secret.as_posix()}" %}}')
    assert SECRET not in str(error.value)


def test_a_backslash_name_is_refused(overrides: Path) -> None:
    with pytest.raises(TemplateError, match="backslash"):
        render_with(overrides, '{% include "parts\\\\footer.md" %}')


def test_the_note_template_itself_as_a_symlink_is_refused(overrides: Path, secret: Path) -> None:
    (overrides / MESSAGE_TEMPLATE).symlink_to(secret)
    renderer = Renderer(overrides)
    with pytest.raises(TemplateError, match=r"'message\.md'.*is a symlink"):
        renderer.check()
    with pytest.raises(TemplateError, match="is a symlink"):
        renderer.render(MESSAGE_TEMPLATE, {}, IDENTITY)


def test_a_symlinked_templates_folder_is_refused(tmp_path: Path, overrides: Path) -> None:
    (overrides / MESSAGE_TEMPLATE).write_text("mine", encoding="utf-8")
    linked = tmp_path / "linked-templates"
    linked.symlink_to(overrides, target_is_directory=True)
    with pytest.raises(TemplateError, match=r"templates folder .*linked-templates is a symlink"):
        Renderer(linked).check()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_named_pipe_is_refused_instead_of_blocking(overrides: Path) -> None:
    os.mkfifo(overrides / "pipe.md")
    with pytest.raises(TemplateError, match="not a regular file"):
        render_with(overrides, '{% include "pipe.md" %}')


def test_a_missing_override_falls_back_to_the_builtin_and_a_missing_include_is_named(overrides: Path) -> None:
    renderer = Renderer(overrides)
    assert renderer.template_file(MESSAGE_TEMPLATE).endswith("templates/message.md")
    with pytest.raises(TemplateError, match=r"message\.md, line 1: template 'nowhere\.md' not found"):
        render_with(overrides, '{% include "nowhere.md" %}')


def test_import_with_a_symlinked_footer_stops_and_no_note_holds_its_file(
    vault: Path, secret: Path, capsys: Any
) -> None:
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True)
    (templates / "footer.md").symlink_to(secret)
    (templates / MESSAGE_TEMPLATE).write_text('{{ message.body }}\n{% include "footer.md" %}\n', encoding="utf-8")
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault)]) == 1
    err = capsys.readouterr().err
    assert "footer.md" in err and "is a symlink" in err and "Traceback" not in err
    written = {name: data for name, data in vault_files(vault).items() if "_templates" not in name}
    assert not any(SECRET.encode() in data for data in written.values())
    assert not [name for name in written if name.endswith(".md")]


def test_import_refuses_a_vault_whose_templates_folder_is_a_symlink(vault: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / MESSAGE_TEMPLATE).write_text("{{ message.body }}", encoding="utf-8")
    (vault / "Telegram").mkdir()
    (vault / "Telegram" / "_templates").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(VaultError, match=r"_templates.*symlink"):
        asyncio.run(import_export(vault, SAMPLE_EXPORT))
    assert not (vault / "Telegram" / "Field Notes").exists()
