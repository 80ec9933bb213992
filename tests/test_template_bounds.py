"""Templates cannot hang or exhaust memory, and whatever they raise is one error naming file and line.

The time bound is tested with a fake clock that advances a fixed step each time it is read, so
these tests never depend on how fast the machine is. Memory is measured with tracemalloc: an
operation that is refused must be refused before it allocates.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tracemalloc
from pathlib import Path
from typing import Any

import frontmatter
import jinja2
import jinja2.sandbox
import pytest
from conftest import SAMPLE_EXPORT

from tobs_sync.app import import_export
from tobs_sync.cli import main
from tobs_sync.config import TemplateLimits, settings_from_mapping
from tobs_sync.errors import ConfigError, TemplateError, TemplateLimitExceeded
from tobs_sync.merge import wrap_body
from tobs_sync.model import Chat, ChatKind, MediaRef, Message
from tobs_sync.render import CHAT_TEMPLATE, MESSAGE_TEMPLATE, Renderer, builtin_templates_dir
from tobs_sync.views import StoredMedia, chat_view, message_view

IDENTITY = {"tg_chat_id": -1001, "tg_message_id": 5}
PEAK_BYTES = 30_000_000
"""Far below what any refused operation would have allocated (a gigabyte, or more)."""


class FakeClock:
    """Seconds that advance by ``step`` every time the clock is read."""

    def __init__(self, step: float = 0.001) -> None:
        self.now = 0.0
        self.step = step
        self.reads = 0

    def __call__(self) -> float:
        self.now += self.step
        self.reads += 1
        return self.now


def renderer_for(tmp_path: Path, text: str, **limits: int) -> tuple[Renderer, FakeClock]:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    (folder / MESSAGE_TEMPLATE).write_text(text, encoding="utf-8")
    clock = FakeClock()
    return Renderer(folder, limits=TemplateLimits(**limits), clock=clock), clock


def render(renderer: Renderer, **context: Any) -> str:
    return renderer.render(MESSAGE_TEMPLATE, context, IDENTITY).decode("utf-8")


# --- time -------------------------------------------------------------------------------------


def test_nested_range_loops_stop_at_the_time_bound_naming_file_and_line(tmp_path: Path) -> None:
    text = "one\ntwo\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n"
    renderer, clock = renderer_for(tmp_path, text, max_render_ms=200)
    with pytest.raises(TemplateLimitExceeded) as error:
        render(renderer)
    message = str(error.value)
    assert f"{tmp_path / 'templates' / 'message.md'}, line 3" in message
    assert "longer than 200 ms (templates.max_render_ms)" in message
    assert 200 <= clock.reads <= 205  # 1 ms per read: stopped at the first check past the deadline


def test_a_loop_over_given_data_is_timed_too(tmp_path: Path) -> None:
    renderer, _ = renderer_for(tmp_path, "{% for a in items %}{% for b in items %}{% endfor %}{% endfor %}",
                               max_render_ms=50)
    with pytest.raises(TemplateLimitExceeded, match=r"templates\.max_render_ms"):
        render(renderer, items=list(range(100_000)))


def test_recursive_macros_are_timed_by_their_calls(tmp_path: Path) -> None:
    text = "{% macro walk(n) %}{% if n %}{{ walk(n - 1) }}{{ walk(n - 1) }}{% endif %}{% endmacro %}{{ walk(40) }}"
    renderer, _ = renderer_for(tmp_path, text, max_render_ms=100)
    with pytest.raises(TemplateLimitExceeded, match=r"templates\.max_render_ms"):
        render(renderer)


def test_the_same_render_passes_or_stops_by_the_configured_time_bound(tmp_path: Path) -> None:
    text = "{% for i in range(300) %}.{% endfor %}"
    generous, _ = renderer_for(tmp_path, text, max_render_ms=2000)
    assert render(generous).endswith("." * 300 + "\n\n%% tobs:end %%\n")
    strict, _ = renderer_for(tmp_path, text, max_render_ms=100)
    with pytest.raises(TemplateLimitExceeded, match="longer than 100 ms"):
        render(strict)


def test_the_builtin_templates_fit_the_default_time_bound_with_a_wide_margin(tmp_path: Path) -> None:
    """With 1 ms per clock read, a default render reads the clock far fewer than 1000 times."""
    clock = FakeClock()
    renderer = Renderer(None, limits=TemplateLimits(), clock=clock)
    when = dt.datetime(2024, 3, 1, 9, 15)
    chat = Chat(id=-1001, title="News", kind=ChatKind.CHANNEL, username="news")
    photos = [Message(chat_id=-1001, id=5 + i, date=1709283600, text="Hello **there**" if i == 0 else "",
                      sender_name="Sam", grouped_id=7) for i in range(10)]
    stored = [StoredMedia(MediaRef("photo", f"p{i}"), f"Telegram/_attachments/p{i}.jpg", "stored") for i in range(10)]
    context = {
        "message": message_view(photos, stored, tz=dt.UTC, reply_path=None, note_path="Telegram/News/2024-03-01 5.md"),
        "chat": chat_view(chat, "Telegram/News/News.md"),
    }
    renderer.render(MESSAGE_TEMPLATE, context, IDENTITY)
    recent = [{"path": f"n{i}.md", "link": f"[[n{i}]]", "date": when} for i in range(50)]
    stats = {"count": 50, "first": when, "last": when}
    chat_context = {"chat": chat_view(chat, "Telegram/News/News.md"), "stats": stats, "recent": recent}
    renderer.render(CHAT_TEMPLATE, chat_context, {"tg_chat_id": -1001})
    assert clock.reads < 500


# --- size -------------------------------------------------------------------------------------

HUGE = [
    pytest.param("{{ ('a' * 10**9)|length }}", id="string-repeat"),
    pytest.param("{{ [0] * 10**9 }}", id="list-repeat"),
    pytest.param("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                 id="concat-doubling"),
    pytest.param("{% set ns = namespace(s=[0]) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                 id="plus-doubling"),
    pytest.param("{{ 'x'|center(10**9) }}", id="center-filter"),
    pytest.param("{{ 'x'.ljust(10**9) }}", id="ljust-method"),
    pytest.param("{{ '%999999999s' % 1 }}", id="percent-width"),
    pytest.param("{{ '%.999999999f' % 1 }}", id="percent-precision"),
    pytest.param("{{ '{:>999999999}'.format(1) }}", id="format-width"),
    pytest.param("{{ '%s'|format('y' * 999999) ~ '%s'|format('y' * 999999) }}", id="format-filter"),
    pytest.param("{{ ('a' * 100000)|replace('', 'b' * 100000) }}", id="replace-filter"),
    pytest.param("{{ ('a' * 100000).replace('a', 'b' * 100000) }}", id="replace-method"),
    pytest.param("{{ ('\\n' * 100000)|indent(100000) }}", id="indent-filter"),
    pytest.param("{{ range(100000)|join('x' * 100000) }}", id="join-filter"),
    pytest.param("{{ ('x' * 100000).join(['y'] * 100000) }}", id="join-method"),
    pytest.param("{{ [1]|batch(10**9, 'x')|list }}", id="batch-fill"),
    pytest.param("{{ (1).to_bytes(10**9, 'big')|length }}", id="to-bytes"),
    pytest.param("{{ [['x' * 1000] * 1000] * 100 }}", id="print-nested-list"),
    pytest.param("{% set x %}{% for i in range(100000) %}{% for j in range(100000) %}0123456789{% endfor %}"
                 "{% endfor %}{% endset %}{{ x|length }}", id="set-block-buffer"),
    pytest.param("{% set properties = {'tags': ['y' * 100000] * 100000} %}", id="properties"),
]


@pytest.mark.parametrize("text", HUGE)
def test_huge_results_are_refused_before_they_are_built(tmp_path: Path, text: str) -> None:
    renderer, _ = renderer_for(tmp_path, f"first line\n{text}\n", max_render_ms=600_000)
    tracemalloc.start()
    try:
        with pytest.raises(TemplateLimitExceeded) as error:
            render(renderer)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(error.value)
    assert "message.md" in message
    assert "line 2" in message or "properties" in message
    assert "templates.max_output_chars" in message
    assert peak < PEAK_BYTES


def test_the_size_bound_is_configurable(tmp_path: Path) -> None:
    text = "{{ 'x' * count }}"
    small, _ = renderer_for(tmp_path, text, max_output_chars=5000, max_render_ms=600_000)
    assert render(small, count=2000).endswith("x" * 2000 + "\n\n%% tobs:end %%\n")
    with pytest.raises(TemplateLimitExceeded, match="at most 5000 characters"):
        render(small, count=6000)


def test_output_is_counted_as_it_is_produced(tmp_path: Path) -> None:
    renderer, _ = renderer_for(
        tmp_path, "{% for i in range(1000) %}{{ text }}{% endfor %}", max_output_chars=50_000, max_render_ms=600_000
    )
    with pytest.raises(TemplateLimitExceeded, match="the output takes the render past its limit"):
        render(renderer, text="y" * 100)


def test_what_the_renderers_own_functions_return_is_counted(tmp_path: Path) -> None:
    renderer, _ = renderer_for(tmp_path, "{{ merge(big) | length }}", max_output_chars=1000, max_render_ms=600_000)
    with pytest.raises(TemplateLimitExceeded, match=r"calling merge\(\) takes the render past its limit"):
        render(renderer, big={str(i): i for i in range(5000)})


def test_calls_of_the_renderers_own_functions_are_timed(tmp_path: Path) -> None:
    # one call, no loop, lookup or output: only the call's own check can see the deadline pass
    renderer, clock = renderer_for(tmp_path, "{% set x = merge(m) %}", max_render_ms=1)
    clock.step = 0.01  # every read is past a deadline 1 ms after the first
    with pytest.raises(TemplateLimitExceeded, match="took longer than 1 ms"):
        render(renderer, m={})
    assert clock.reads == 2  # the budget's start, then the call


def test_only_plain_functions_skip_the_sandboxs_look_at_a_call() -> None:
    environment = Renderer(None)._env

    @jinja2.pass_context
    def with_context(context: Any) -> None: ...

    def unsafe() -> None: ...

    unsafe.unsafe_callable = True  # type: ignore[attr-defined]
    for name, func in (("with_context", with_context), ("unsafe", unsafe), ("method", "".join)):
        with pytest.raises(TypeError, match="not a plain function"):
            environment.trust_plain_function(name, func)  # type: ignore[arg-type]
        assert name not in environment.globals


def test_numbers_are_kept_printable(tmp_path: Path) -> None:
    renderer, _ = renderer_for(tmp_path, "{{ 2 ** (10**9) }}")
    with pytest.raises(TemplateLimitExceeded, match=r"number of about \d+ digits"):
        render(renderer)


def test_range_is_bounded(tmp_path: Path) -> None:
    renderer, _ = renderer_for(tmp_path, "{% for i in range(10**12) %}{% endfor %}")
    with pytest.raises(TemplateLimitExceeded, match=r"range\(\) would give 1000000000000 numbers"):
        render(renderer)


# --- every error: one TemplateError naming file and line --------------------------------------


def _raise_memory_error() -> None:
    raise MemoryError


RAISING = [
    pytest.param("{{ when.strftime(7) }}", "TypeError: strftime() argument 1 must be str", id="strftime-method"),
    pytest.param("{{ when|strftime(7) }}", "TypeError: strftime() argument 1 must be str", id="strftime-filter"),
    pytest.param("{{ 1 // 0 }}", "ZeroDivisionError", id="division"),
    pytest.param("{{ 1.5 ** 100000 }}", "OverflowError", id="float-overflow"),
    pytest.param("{{ ''.__class__.__mro__ }}", "unsafe", id="sandbox"),
    pytest.param("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nest too deeply", id="recursion"),
    pytest.param("{{ boom() }}", "out of memory (MemoryError)", id="memory"),
    pytest.param("{{ [1, 2]|sum(start=[]) }}", "the sum filter adds numbers", id="sum-of-lists"),
    pytest.param("{{ lipsum(5) }}", "'lipsum' is undefined", id="no-lipsum"),
    pytest.param("{{ {}|dictsort(by='colour') }}", "You can only sort by either", id="filter-argument"),
    pytest.param("{{ [1] < 'a' }}", "TypeError: '<' not supported", id="comparison"),
]


@pytest.mark.parametrize(("text", "message"), RAISING)
def test_any_exception_in_a_template_is_one_template_error_with_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    renderer, _ = renderer_for(tmp_path, f"first\nsecond\n{text}\n")
    with pytest.raises(TemplateError) as error:
        render(renderer, when=dt.datetime(2024, 3, 1), boom=_raise_memory_error)
    assert f"{tmp_path / 'templates' / 'message.md'}, line 3: " in str(error.value)
    assert message in str(error.value)


def test_an_error_in_an_included_template_names_that_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "footer.md").write_text("fine\n{{ 1 // 0 }}\n", encoding="utf-8")
    renderer, _ = renderer_for(tmp_path, 'body\n{% include "footer.md" %}\n')
    with pytest.raises(TemplateError, match=r"footer\.md, line 2: ZeroDivisionError"):
        render(renderer)


def test_text_that_is_not_unicode_is_an_error_naming_the_template(tmp_path: Path) -> None:
    renderer, _ = renderer_for(tmp_path, "{{ '\\ud800' }}")
    with pytest.raises(TemplateError, match=r"message\.md: the note cannot be written as UTF-8"):
        render(renderer)


# --- configuration ----------------------------------------------------------------------------


def test_template_bounds_are_read_from_the_config(tmp_path: Path) -> None:
    settings = settings_from_mapping(tmp_path, {"templates": {"max_render_ms": 250, "max_output_chars": 20_000}})
    assert settings.template_limits == TemplateLimits(max_render_ms=250, max_output_chars=20_000)
    assert settings_from_mapping(tmp_path, {}).template_limits == TemplateLimits(1000, 1_000_000)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_render_ms": 0}, "templates.max_render_ms: must be at least 1"),
        ({"max_render_ms": "1s"}, "templates.max_render_ms: must be a number"),
        ({"max_output_chars": 10}, "templates.max_output_chars: must be at least 1000"),
        ({"max_output_char": 10}, "templates.max_output_char: unknown key (did you mean 'max_output_chars'?)"),
    ],
)
def test_bad_template_bounds_name_the_key(tmp_path: Path, table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(tmp_path, {"templates": table})
    assert message in str(error.value)


def test_an_import_applies_the_configured_size_bound(vault: Path) -> None:
    config = vault / ".tobs" / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + "[templates]\nmax_output_chars = 1000\n", encoding="utf-8")
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True)
    builtin = (builtin_templates_dir() / MESSAGE_TEMPLATE).read_text(encoding="utf-8")
    (templates / MESSAGE_TEMPLATE).write_text(builtin + "{{ '=' * 2000 }}\n", encoding="utf-8")
    with pytest.raises(TemplateLimitExceeded, match=r"message\.md, line \d+: '\*' would make 2000 .*max_output_chars"):
        asyncio.run(import_export(vault, SAMPLE_EXPORT))


# --- the bounds change nothing else -----------------------------------------------------------

FEATURES = {
    "base.md": "head {% block body %}default{% endblock %} tail {{ self.body() }}",
    "child.md": "{% extends 'base.md' %}{% block body %}child {{ x }} {{ super() }}{% endblock %}",
    "macros.md": "{% macro hi(n) %}hi {{ n }}{% endmacro %}",
    "main.md": """{% import 'macros.md' as m %}{% from 'macros.md' import hi %}
{{ m.hi(1) }} {{ hi(2) }}
{% for i in items recursive %}[{{ loop.index }}/{{ loop.length }} {{ loop.cycle('a', 'b') }} {{ i.name }}\
{% if i.kids %}{{ loop(i.kids) }}{% endif %}]{% else %}none{% endfor %}
{% macro wrap() %}<{{ caller(5) }}>{% endmacro %}{% call(n) wrap() %}in {{ n }}{% endcall %}
{% filter upper %}upper {{ x ~ '!' ~ 3 }}{% endfilter %}
{% set block %}{% for k, v in d|dictsort %}{{ k }}={{ v }};{% endfor %}{% endset %}{{ block }}
{{ "%s-%05d"|format('a', 7) }} {{ '{}:{}'.format(1, 2) }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 2 ** 10 }} {{ 7 - 2 }}
{{ items|map(attribute='name')|join(', ') }} {{ range(5)|list }} {{ range(10)|sum }} {{ 'x'|center(5) }}|
{% with y = 3 %}{{ y }}{% endwith %}{% include 'child.md' %}
{% for a in [] %}x{% else %}empty{% endfor %} {{ items|selectattr('kids')|list|length }} {{ (items|first).name }}
{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}
{{ 'a b c'.split()|join('-') }} {{ ('x' ~ 1)|replace('x', 'y') }} {{ d.items()|list }} {{ "é"|urlencode }}
{% autoescape true %}{{ '<b>' ~ x }}{% endautoescape %} {{ x|indent(2, true) }} {{ 'abc'[1:] }} {{ '%s' % 5 }}
{{ [3, 1, 3]|unique|list }} {{ items|groupby('name')|map(attribute='grouper')|join }} {{ range(5)|slice(2)|list }}
{{ range(5)|reject('odd')|list }} {{ items|rejectattr('kids')|map(attribute='name')|list }}
{{ range(4)|select('even')|list }}
""",
}


def test_the_bounded_sandbox_renders_what_jinjas_sandbox_renders(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    for name, text in FEATURES.items():
        (folder / name).write_text(text, encoding="utf-8")
    context = {"items": [{"name": "a", "kids": [{"name": "b", "kids": []}]}, {"name": "c", "kids": []}],
               "x": "X<", "d": {"b": 2, "a": 1}}
    plain = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )
    expected = plain.get_template("main.md").render(context).strip("\n")
    assert "[1/2 a a[1/1 a b]][2/2 b c]<in 5>UPPER X<!3a=1;b=2;" in expected
    renderer, _ = renderer_for(tmp_path, "")
    rendered = renderer.render("main.md", context, IDENTITY).decode("utf-8")
    assert frontmatter.loads(rendered).content == wrap_body(expected)


def test_the_cli_prints_a_failing_template_as_one_line_without_a_traceback(vault: Path, capsys: Any) -> None:
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True)
    (templates / MESSAGE_TEMPLATE).write_text("{{ message.body }}\n{{ message.date.strftime(7) }}\n", encoding="utf-8")
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{templates / MESSAGE_TEMPLATE}, line 2: TypeError: strftime() argument 1 must be str" in err
    assert len(err.strip().splitlines()) == 1
