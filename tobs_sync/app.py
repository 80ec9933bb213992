"""The composition root: one vault's settings, store, writer, renderer and synchroniser.

Everything is built here from :class:`~tobs_sync.config.Settings` and nothing else, so the CLI,
the agent and tests assemble the same objects the same way. A writing app holds the vault lock
(:mod:`tobs_sync.lock`) from :meth:`App.open` to :meth:`App.close`, and only once it holds it removes
the temp files a crash may have left in the vault (only after a writer that did not close cleanly:
a pass with nothing to do never walks the vault). A read-only app (``status``) takes no lock,
deletes nothing, opens the store read-only and works while a writer runs. Limits: one writing app
per vault at a time; a second one fails with :class:`~tobs_sync.lock.VaultBusy`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from telethon import TelegramClient

from tobs_sync.chat_list import ChatListing, list_chats
from tobs_sync.config import DEFAULT_CONFIG, Settings, load_settings
from tobs_sync.errors import TobsError
from tobs_sync.lock import VaultLock
from tobs_sync.media import MediaCounts, MediaWriter
from tobs_sync.metrics import Metrics, MetricsServer
from tobs_sync.observe import Observers, SyncObserver
from tobs_sync.processors.pool import ProcessorPool
from tobs_sync.processors.registry import load_processors
from tobs_sync.render import TEMPLATE_NAMES, Renderer, builtin_templates_dir
from tobs_sync.session import (
    api_credentials,
    check_private,
    ensure_private_dir,
    private_umask,
    session_dir,
    session_path,
)
from tobs_sync.sources.base import Source
from tobs_sync.sources.tdesktop import DesktopExport
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.status_note import StatusNote
from tobs_sync.store import Store
from tobs_sync.store_history import ChatHistory, chat_histories
from tobs_sync.store_passes import PassLog
from tobs_sync.store_rows import ChatState
from tobs_sync.sync import Synchronizer, SyncReport
from tobs_sync.vault import Vault
from tobs_sync.workers import DcScheduler, GlobalPool

log = logging.getLogger(__name__)

DEFAULT_ATTACHMENTS_WITHOUT_OBSIDIAN = "Telegram/_attachments"
ONE_SHOT_TRIGGERS = frozenset({"sync", "import"})
"""Passes of the one-shot commands: recorded, but they leave the status note to the agent (they print
their report, and the vault they make stays exactly what the same messages make, however many runs)."""
CLEAN_CLOSE = "closed-cleanly"
"""A file in the state folder: the last writer ended without an error (so without temp files)."""


def utc_now() -> dt.datetime:
    """Now, in UTC: when passes start and finish."""
    return dt.datetime.now(dt.UTC)


def clean_after_unclean_close(settings: Settings, vault: Vault) -> int:
    """Remove the temp files a crash may have left, unless the last writer closed cleanly; how many.

    Scanning a large vault takes a noticeable part of a pass that has nothing to do, so it is done
    only when needed: after a crash, a kill, an error, or on a vault never closed by this version.
    The mark is removed (durably) before this writer starts, so a crash from now on leaves none.
    """
    mark = settings.state_dir / CLEAN_CLOSE
    if not mark.is_file():
        return vault.clean_temp_files()
    mark.unlink()
    if os.name != "nt":  # Windows cannot fsync a folder
        folder = os.open(settings.state_dir, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return 0


def attachment_rule(settings: Settings, vault: Vault) -> str:
    """The attachment folder rule: config first, then Obsidian's own setting."""
    if settings.attachments:
        return settings.attachments
    app_config = vault.load_app_config(settings.obsidian_config)
    if (settings.vault_root / settings.obsidian_config / "app.json").is_file():
        value = app_config.get("attachmentFolderPath", "/")
        return value if isinstance(value, str) else "/"
    return DEFAULT_ATTACHMENTS_WITHOUT_OBSIDIAN


@dataclass
class App:
    settings: Settings
    store: Store
    vault: Vault
    renderer: Renderer
    media: MediaWriter
    processors: ProcessorPool
    synchronizer: Synchronizer
    cleaned_temp_files: int = 0
    lock: VaultLock | None = None
    """The vault lock this app took and releases on :meth:`close` (None: read-only, or the caller's lock)."""
    read_only: bool = False
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1))
    """The one executor for blocking work (note writes and fsyncs), ``telegram.blocking_workers`` threads."""
    observer: Observers = field(default_factory=Observers)
    """Every observer of this app's passes (progress, metrics); the engine reports to it."""
    metrics: Metrics | None = None
    """The metrics (``[metrics] port`` set), served while the app is open."""
    metrics_server: MetricsServer | None = None
    clock: Callable[[], dt.datetime] = field(default_factory=lambda: utc_now)
    """When a pass starts and finishes (a fake clock in tests)."""

    @classmethod
    def open(
        cls,
        vault_root: Path,
        *,
        scheduler: DcScheduler | GlobalPool | None = None,
        command: str = "tobs-sync",
        lock: VaultLock | None = None,
        read_only: bool = False,
        settings: Settings | None = None,
    ) -> App:
        """Everything for one vault, holding its lock until :meth:`close`.

        ``command`` names this process in the error a second writer gets. ``lock``: a lock the caller
        already holds (it stays the caller's to release). ``read_only``: no lock, no clean-up, the
        store opened read-only, nothing created; the vault must have state already.
        ``scheduler`` replaces the configured download scheduler (benchmarks). ``settings``: already
        loaded (the agent keeps the ones in force when a changed config cannot be applied).
        """
        settings = settings or load_settings(vault_root)
        vault = Vault(settings.vault_root)
        if read_only:
            require_state(settings)
            store = Store.open(settings.database_path, read_only=True)
            return cls._compose(settings, vault, store, scheduler, read_only=True)
        own_lock = None
        if lock is None:
            own_lock = lock = VaultLock(settings.state_dir, command).acquire()
        elif not lock.held or lock.state_dir != settings.state_dir:
            raise ValueError(f"App.open: the lock given must be held and be the one of {settings.state_dir}")
        try:
            cleaned = clean_after_unclean_close(settings, vault)  # safe only now: no other writer is mid-download
            app = cls._compose(settings, vault, Store.open(settings.database_path), scheduler)
        except BaseException:
            if own_lock is not None:
                own_lock.release()
            raise
        app.cleaned_temp_files, app.lock = cleaned, own_lock
        if settings.metrics_port:
            try:
                app.metrics_server = MetricsServer(app.observe_metrics().registry, settings.metrics_port)
            except OSError as exc:
                app.close(clean=True)
                raise TobsError(f"metrics.port: cannot serve metrics on 127.0.0.1:{settings.metrics_port}: {exc}")\
                    from exc
        return app

    @classmethod
    def _compose(
        cls, settings: Settings, vault: Vault, store: Store, scheduler: DcScheduler | GlobalPool | None,
        *, read_only: bool = False,
    ) -> App:
        try:
            renderer = Renderer(
                vault.resolve(settings.templates) if settings.templates else None, limits=settings.template_limits
            )
            telegram = settings.telegram
            scheduler = scheduler or DcScheduler(
                per_dc=telegram.download_workers_per_dc,
                total=telegram.download_workers_total,
                max_flood_wait=telegram.flood_max_wait_s,
            )
            processors = ProcessorPool(
                load_processors(settings.media.processors), max_workers=settings.media.processor_workers
            )
            media = MediaWriter(
                vault, store, attachment_rule(settings, vault), settings.timezone,
                settings=settings.media, scheduler=scheduler, processors=processors,
            )
            executor = ThreadPoolExecutor(telegram.blocking_workers, thread_name_prefix="tobs-blocking")
            observer = Observers()
            media.observer = observer
            synchronizer = Synchronizer(settings, store, vault, renderer, media, executor=executor, observer=observer)
        except BaseException:
            store.close()
            raise
        return cls(settings, store, vault, renderer, media, processors, synchronizer, read_only=read_only,
                   executor=executor, observer=observer)

    def close(self, *, clean: bool = True) -> None:
        """Stop the processors and the executor, close the store, then let the next writer in.

        ``clean``: the app's work ended without an error, so it left no temp file behind; the next
        writer need not look for any (see :func:`clean_after_unclean_close`)."""
        try:
            if self.metrics_server is not None:
                self.metrics_server.stop()
            try:
                self.executor.shutdown(wait=True)
                self.processors.close()
            finally:
                self.store.close()
            if clean and not self.read_only:
                (self.settings.state_dir / CLEAN_CLOSE).write_bytes(b"")
        finally:
            if self.lock is not None:
                self.lock.release()

    def __enter__(self) -> App:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(clean=exc_type is None)

    async def sync_source(self, source: Source, *, concurrent_chats: int = 1) -> SyncReport:
        """One pass over ``source``; ``concurrent_chats`` > 1 only for a source that serves chats in any order."""
        return await self.synchronizer.sync(source, concurrent_chats=concurrent_chats)

    async def run_pass(self, source: Source, trigger: str, *, concurrent_chats: int = 1) -> SyncReport:
        """One pass over ``source``, recorded (:meth:`record_pass`) whether it ends well or with an error."""
        self.observer.pass_started(trigger)
        started = self.clock()
        try:
            report = await self.sync_source(source, concurrent_chats=concurrent_chats)
        except TobsError as exc:
            self.observer.error(type(exc).__name__)
            try:
                self.record_pass(SyncReport(failed=[str(exc)]), started, self.clock(), trigger)
            except TobsError as also:  # the pass's own error is the one to report
                log.warning("the failed pass could not be recorded: %s", also)
            raise
        self.record_pass(report, started, self.clock(), trigger)
        return report

    def record_pass(self, report: SyncReport, started: dt.datetime, finished: dt.datetime, trigger: str) -> None:
        """After a pass (``trigger``: ``sync``, ``import``, ``schedule``, ``live`` ...): keep its record
        for ``status``, tell the observers it ended, and update the status note if it changed."""
        PassLog(self.store).record(report, started, finished, trigger)
        self.observer.pass_finished(
            (finished - started).total_seconds(), report.notes_written, report.notes_unchanged, len(report.conflicts)
        )
        if trigger not in ONE_SHOT_TRIGGERS:
            StatusNote(self.settings.status_note, self.vault, self.store, self.settings.timezone).update()

    def observe_metrics(self) -> Metrics:
        """This app's metrics, created (and fed by every later pass) on first use."""
        if self.metrics is None:
            self.metrics = Metrics()
            self.observer.add(self.metrics)
        return self.metrics

    def watch(self, observer: SyncObserver) -> None:
        """Have ``observer`` told of this app's passes from now on (progress display, logs)."""
        self.observer.add(observer)


async def import_export(
    vault_root: Path, export_path: Path, *, observer: SyncObserver | None = None
) -> tuple[SyncReport, MediaCounts]:
    """Import a Telegram Desktop export (folder or ``result.json``) into a vault, incrementally.

    The vault is locked first (a second writer fails before reading anything), then the export is
    read end to end before the vault is touched, so a malformed export leaves the vault as it was.
    """
    settings = load_settings(vault_root)
    with VaultLock(settings.state_dir, "tobs-sync import") as lock:
        async with DesktopExport(export_path, local_timezone=settings.timezone) as source:
            with App.open(vault_root, lock=lock) as app:
                if observer is not None:
                    app.watch(observer)
                report = await app.run_pass(source, "import")
                return report, app.media.counts


async def sync_telegram(
    vault_root: Path, *, simulate: str | None = None, repair_permissions: bool = False,
    observer: SyncObserver | None = None,
) -> tuple[SyncReport, MediaCounts]:
    """One incremental pass over the selected Telegram chats (or over a simulated account).

    ``simulate`` is a simulator spec (``"chats=4,messages=5000,media=0.2,seed=1"``): a real
    Telethon client talks to an in-memory Telegram, so no account or network is needed.
    """
    settings = load_settings(vault_root)
    with VaultLock(settings.state_dir, "tobs-sync sync") as lock:  # before the session is opened: it is shared
        simulated = None
        if simulate is not None:
            from tobs_sync.sim import SimulatedTelegram, parse_spec  # only demos, tests and benchmarks need it

            simulated = SimulatedTelegram(parse_spec(simulate))
            client = simulated.client(raise_last_call_error=True, request_retries=3)
            if simulated.spec.live_every_s > 0:
                simulated.start_live()
        else:
            client = open_client(settings, repair_permissions=repair_permissions)
        try:
            with App.open(vault_root, lock=lock) as app:
                if observer is not None:
                    app.watch(observer)
                async with TelegramSource(client, settings.telegram, peers=app.store) as source:
                    report = await app.run_pass(source, "sync", concurrent_chats=settings.telegram.concurrent_chats)
                    return report, app.media.counts
        finally:
            if simulated is not None:
                await simulated.stop_live()


async def account_chats(
    vault_root: Path, *, simulate: str | None = None, repair_permissions: bool = False
) -> list[ChatListing]:
    """Every chat of the account (or of a simulated one) and what a sync would do with it.

    Nothing in the vault is written: its store, if it has one, is opened read-only. A simulation
    takes no lock; the real account's session is shared with ``sync`` (Telethon writes to it), so,
    as ``sync`` does, the vault lock is held while the session is open.
    """
    settings = load_settings(vault_root)
    states: dict[int, ChatState] = {}
    histories: dict[int, ChatHistory] = {}
    if settings.database_path.is_file():
        with Store.open_read_only(settings.database_path) as store:
            states = {state.chat.id: state for state in store.chat_states()}
            histories = chat_histories(store)
    if simulate is not None:
        from tobs_sync.sim import SimulatedTelegram, parse_spec  # only demos, tests and benchmarks need it

        client = SimulatedTelegram(parse_spec(simulate)).client(raise_last_call_error=True, request_retries=3)
        async with TelegramSource(client, settings.telegram) as source:
            dialogs = await source.dialog_chats()
    else:
        with VaultLock(settings.state_dir, "tobs-sync chats"):
            client = open_client(settings, repair_permissions=repair_permissions)
            async with TelegramSource(client, settings.telegram) as source:
                dialogs = await source.dialog_chats()
    return list_chats(settings, dialogs, states, histories)


def open_client(settings: Settings, *, repair_permissions: bool = False) -> TelegramClient:
    """A Telethon client on this vault's session, after checking the session is private."""
    credentials = api_credentials(settings)
    folder = session_dir(settings)
    ensure_private_dir(folder)
    check_private(folder, repair=repair_permissions)
    with private_umask():
        return TelegramClient(
            str(session_path(settings)),
            credentials.api_id,
            credentials.api_hash,
            timeout=int(settings.telegram.request_timeout_s),
            request_retries=3,
            raise_last_call_error=True,
            flood_sleep_threshold=0,
        )


def init_vault(vault_root: Path) -> list[Path]:
    """Create the config and template overrides of a vault; existing files are kept. Returns what was made."""
    vault_root.mkdir(parents=True, exist_ok=True)
    settings = load_settings(vault_root)
    created: list[Path] = []
    with VaultLock(settings.state_dir, "tobs-sync init"):
        if not settings.config_path.exists():
            settings.config_path.write_text(DEFAULT_CONFIG, encoding="utf-8")
            created.append(settings.config_path)
        vault = Vault(settings.vault_root)
        templates = vault.ensure_folder(settings.templates)
        for name in TEMPLATE_NAMES:
            target = templates / name
            if not target.exists():
                shutil.copyfile(builtin_templates_dir() / name, target)
                created.append(target)
    return created


def require_state(settings: Settings) -> None:
    """Refuse, without creating anything, a folder where tobs-sync has not stored anything yet."""
    if not settings.database_path.is_file():
        root = settings.vault_root
        raise TobsError(
            f"{root} is not a tobs-sync vault yet (no {settings.database_path.relative_to(root).as_posix()}); "
            f"run 'tobs-sync import EXPORT --vault {root}' or 'tobs-sync sync --vault {root}' first"
        )


def ensure_vault_folder(vault_root: Path) -> None:
    if vault_root.exists() and not vault_root.is_dir():
        raise TobsError(f"{vault_root} exists and is not a folder")
    vault_root.mkdir(parents=True, exist_ok=True)
