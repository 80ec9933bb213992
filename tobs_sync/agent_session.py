"""One session of the agent: an open app and source, from the catch-up pass until stop or reload.

A session applies the deletions decisions left for it (:mod:`tobs_sync.deletion_requests`) and
catches up (one pass over every selected chat), then runs the scheduled passes
(:mod:`tobs_sync.agent_schedule`), the live changes of the source (:mod:`tobs_sync.agent_live`),
the template and config watchers and the deletions requests (:mod:`tobs_sync.agent_watch`) until
:meth:`AgentSession.run` is told to stop, or a valid config change asks for a new session with the
new settings.

Templates that fail their check when a session starts do not stop the agent: the error (file and
line) is logged once and recorded as a failed pass (``status`` and the status note show it). After
a config change the templates of the session before stay in force; on a fresh start no work runs
(passes, live changes and requests wait) until a saved fix passes the check, and the catch-up then runs.

All work on the vault (passes, live edits and deletions, re-renders) runs one piece at a time under
one lock: within a chat nothing interleaves, and the store sees one writer. On stop, work not yet
started is dropped and work under way is cancelled: what a pass had committed stays (cursors move
only with their notes), the rest is read again by the next start. On reload, work under way ends first.
Limits: a long pass (a first backfill) delays live changes and re-renders until it ends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
from collections.abc import Callable, Coroutine
from typing import Any

from tobs_sync.agent_schedule import (
    DEFAULT_KEY,
    PassScheduler,
    WallClock,
    local_now,
    next_runs_by_chat,
    plan_schedules,
    schedule_key,
)
from tobs_sync.agent_watch import Debouncer, Kind, Watcher
from tobs_sync.app import App
from tobs_sync.config import Settings, load_settings
from tobs_sync.deletion_requests import DeletionRequest, apply_decision, pending_requests, remove_request
from tobs_sync.errors import TobsError
from tobs_sync.model import Chat
from tobs_sync.render import Renderer
from tobs_sync.sources.base import Source
from tobs_sync.store_passes import PassLog
from tobs_sync.sync import SyncReport

log = logging.getLogger(__name__)

PassHook = Callable[[str, SyncReport], None]
"""Called after every piece of work with what it was (``catch-up``, ``chat[2]``, ``live``, ...) and its report."""


def log_pass(what: str, report: SyncReport) -> None:
    """The default record of a piece of work: one line."""
    counts = report.per_chat.values()
    new, edited, deleted, reread = (
        sum(getattr(c, name) for c in counts) for name in ("new", "edited", "deleted", "reconciled")
    )
    log.info("%s: %d new, %d edited, %d deleted in %d chat(s); notes: %d written, %d unchanged%s%s", what, new, edited,
             deleted, len(report.per_chat), report.notes_written, report.notes_unchanged,
             f", {len(report.conflicts)} conflicts" if report.conflicts else "",
             f"; {reread} recent messages read again" if reread else "")


def checked_renderer(app: App, settings: Settings) -> Renderer:
    """A renderer of the vault's templates as saved now, compiled and kept so (no reload from disk)."""
    folder = app.vault.resolve(settings.templates) if settings.templates else None
    renderer = Renderer(folder, limits=settings.template_limits, auto_reload=False)
    renderer.check()
    return renderer


class AgentSession:
    """Catch-up, schedules, live changes and watchers over one app and one open source."""

    def __init__(
        self, app: App, source: Source, *, clock: WallClock = local_now, on_pass: PassHook = log_pass,
        watch: bool = True, quiet_s: float | None = None, previous_renderer: Renderer | None = None,
    ) -> None:
        self.app = app
        self.source = source
        self._clock = clock
        self._on_pass = on_pass
        self._watch = watch
        self._quiet_s = quiet_s
        self._work = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ended = asyncio.Event()
        self._accepting = True
        self.abandoned = False
        """Work was cancelled mid-way (the vault may hold a temp file it left)."""
        self.new_settings: Settings | None = None
        """Set when a valid config change ended the session."""
        self.scheduler = PassScheduler(self._scheduled_pass, clock=clock)
        self._arrived: set[int] = set()
        self._arrival_timer: asyncio.TimerHandle | None = None
        self._live: asyncio.Task[None] | None = None
        self._previous_renderer = previous_renderer
        self._ready = asyncio.Event()
        self._requests = asyncio.Lock()
        """Set once templates that passed their check are in force: work waits for it."""
        self.renderer: Renderer | None = None
        """The checked templates in force (None while a fresh start waits for a fix)."""

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> Settings | None:
        """Work until ``stop`` is set (returns None) or a config change is valid (returns its settings)."""
        self._use_templates()
        loop = asyncio.get_running_loop()
        debouncer = Debouncer(loop, self.file_changed, **({"quiet_s": self._quiet_s} if self._quiet_s else {}))
        watcher = None
        if self._watch:
            settings = self.app.settings
            templates = self.app.vault.resolve(settings.templates) if settings.templates else None
            watcher = Watcher(templates, settings.state_dir, debouncer.poke_threadsafe)
            watcher.start()
        stopper = loop.create_task(stop.wait())
        try:
            self.spawn(self._start())
            self._live = loop.create_task(self._consume_live())
            self._live.add_done_callback(_log_failure)
            ended = loop.create_task(self._ended.wait())
            await asyncio.wait([stopper, ended], return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
        finally:
            stopper.cancel()
            self._accepting = False
            self._ready.set()  # work still waiting for templates sees the session closed and returns
            debouncer.cancel()
            if self._arrival_timer is not None:
                self._arrival_timer.cancel()
            self.scheduler.shutdown()
            if watcher is not None:
                await asyncio.to_thread(watcher.stop)
            await self._end_tasks(cancel=stop.is_set() or self.new_settings is None)
        return self.new_settings if not stop.is_set() else None

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` as a task of this session (ended with it)."""
        if not self._accepting:
            work.close()
            return
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        _log_failure(task)

    async def _end_tasks(self, *, cancel: bool) -> None:
        """Stop: cancel everything (a pass under way is abandoned). Reload: let the work under way end
        (what still waits for the lock sees the session closed and returns)."""
        if self._live is not None:
            self._live.cancel()
        tasks = list(self._tasks)
        if cancel:
            self.abandoned = self._work.locked()
            for task in tasks:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- work -------------------------------------------------------------------------------

    async def _start(self) -> None:
        await self._ready.wait()
        await self._apply_requests()
        try:
            await self.run_pass(None, "catch-up")
        finally:  # a catch-up that failed is retried by the schedules
            if self._accepting:
                self.scheduler.start(plan_schedules(self.app.settings))
                self._save_next_runs()

    async def _scheduled_pass(self, key: str) -> None:
        """A job of the scheduler (which runs it as its own task: the session tracks it to end it)."""
        task = asyncio.current_task()
        if task is None or not self._accepting:
            return
        self._tasks.add(task)
        try:
            rules = self.app.settings.chat_rules
            await self.run_pass(lambda chat: schedule_key(chat, rules) == key,
                                key if key != DEFAULT_KEY else "scheduled")
            self._save_next_runs()
        finally:
            self._tasks.discard(task)

    async def run_pass(self, only: Callable[[Chat], bool] | None, what: str) -> SyncReport | None:
        """One pass (over the chats ``only`` accepts), when no other work is under way."""
        concurrent = self.app.settings.telegram.concurrent_chats
        return await self.exclusive(what, self.app.synchronizer.sync(self.source, concurrent_chats=concurrent,
                                                                     only=only))

    async def exclusive(self, what: str, work: Coroutine[Any, Any, SyncReport]) -> SyncReport | None:
        """Run ``work`` alone (no other work of the session at the same time) and record its report."""
        await self._ready.wait()
        async with self._work:
            if not self._accepting:
                work.close()
                return None
            started = self.app.clock()
            try:
                report = await work
            except TobsError as error:
                log.error("%s: %s", what, error)
                self._record(SyncReport(failed=[str(error)]), started, what)
                return None
            self._record(report, started, what)
        self._on_pass(what, report)
        return report

    def _record(self, report: SyncReport, started: dt.datetime, what: str) -> None:
        """Keep the pass's record for ``status`` and update the status note (never fatal)."""
        try:
            self.app.record_pass(report, started, self.app.clock(), what)
        except TobsError as error:
            log.warning("%s: the pass could not be recorded: %s", what, error)

    def chats_arrived(self, chat_id: int, quiet_s: float) -> None:
        """New messages in ``chat_id``: one pass over every chat with arrivals, ``quiet_s`` after the last."""
        self._arrived.add(chat_id)
        if self._arrival_timer is not None:
            self._arrival_timer.cancel()
        self._arrival_timer = asyncio.get_running_loop().call_later(quiet_s, self._arrivals_due)

    def _arrivals_due(self) -> None:
        self._arrival_timer = None
        chats, self._arrived = frozenset(self._arrived), set()
        self.spawn(self._arrivals_pass(chats))

    async def _arrivals_pass(self, chats: frozenset[int]) -> None:
        await self.run_pass(lambda chat: chat.id in chats, "live")

    async def _consume_live(self) -> None:
        from tobs_sync.agent_live import consume_live_changes

        await consume_live_changes(self)

    def _save_next_runs(self) -> None:
        """Each known chat's next scheduled pass, where ``status`` reads it (the store)."""
        chats = [state.chat for state in self.app.store.chat_states()]
        by_chat = next_runs_by_chat(self.scheduler.next_runs(), chats, self.app.settings.chat_rules)
        try:
            PassLog(self.app.store).replace_next_runs(by_chat)
        except (TobsError, sqlite3.Error) as error:
            log.warning("the next run times could not be saved: %s", error)

    # -- watched files ----------------------------------------------------------------------

    def file_changed(self, kind: Kind) -> None:
        if kind == "templates":
            self.spawn(self._reload_templates() if self._ready.is_set() else self._templates_fixed())
        elif kind == "requests":
            self.spawn(self._apply_requests())
        else:
            self.spawn(self._reload_config())

    def _use_templates(self) -> None:
        """Check the templates as saved now and put them in force; if they fail, keep the previous ones
        (after a config change) or wait for a fix (a fresh start)."""
        try:
            renderer = checked_renderer(self.app, self.app.settings)
        except TobsError as error:
            if self._previous_renderer is None:
                log.error("templates not usable, no pass until they are fixed: %s", error)
            else:
                log.error("templates not usable, the previous templates stay in force: %s", error)
            self._record(SyncReport(failed=[f"templates: {error}"]), self.app.clock(), "templates")
            renderer = self._previous_renderer
        if renderer is not None:
            self._put_in_force(renderer)

    def _put_in_force(self, renderer: Renderer) -> None:
        self.app.renderer = self.renderer = renderer
        self.app.synchronizer.use_renderer(renderer)
        self._ready.set()

    async def _templates_fixed(self) -> None:
        """A template saved while a fresh start waits: put in force if it passes (the catch-up follows)."""
        if self._ready.is_set() or not self._accepting:
            return
        try:
            renderer = checked_renderer(self.app, self.app.settings)
        except TobsError as error:
            log.error("templates still not usable, no pass until they are fixed: %s", error)
            self._record(SyncReport(failed=[f"templates: {error}"]), self.app.clock(), "templates")
            return
        log.info("templates fixed: catching up")
        self._put_in_force(renderer)

    async def _reload_templates(self) -> None:
        async with self._work:
            if not self._accepting:
                return
            old = self.app.renderer
            try:
                renderer = checked_renderer(self.app, self.app.settings)
                self.app.synchronizer.use_renderer(renderer)
                report = self.app.synchronizer.render_all()  # renders every note before writing any
            except TobsError as error:
                self.app.synchronizer.use_renderer(old)
                log.error("template change not applied, the previous templates stay in force: %s", error)
                self._record(SyncReport(failed=[f"templates: {error}"]), self.app.clock(), "templates")
                return
            self.app.renderer = self.renderer = renderer
            self._record(report, self.app.clock(), "templates")
        self._on_pass("templates", report)

    async def _apply_requests(self) -> None:
        """Apply the deletions decisions waiting in the state folder, each as a piece of work (one
        batch at a time: a request is read again only after the batch that applied it has ended)."""
        async with self._requests:
            for request in pending_requests(self.app.settings.state_dir):
                await self.exclusive(f"deletions {request.decision}ed", self._decide(request))

    async def _decide(self, request: DeletionRequest) -> SyncReport:
        report, count = await apply_decision(self.app, request.chat_id, request.decision)
        remove_request(request)  # in the work lock: a stop now leaves it applied, and the request gone
        log.info("deletions %sed as requested in chat %d: %d", request.decision, request.chat_id, count)
        return report

    async def _reload_config(self) -> None:
        try:
            settings = load_settings(self.app.settings.vault_root)
        except TobsError as error:
            log.error("config change not applied, the previous settings stay in force: %s", error)
            return
        if settings == self.app.settings:
            return
        log.info("config changed: applying it")
        self.new_settings = settings
        self._accepting = False
        self._ended.set()


def _log_failure(task: asyncio.Task[Any]) -> None:
    """A task of the session ended with an unexpected error: logged with its traceback (the agent goes on)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("agent: %s", error, exc_info=error)
