"""The long-running agent (``tobs-sync run``): the vault kept current until it is stopped.

The agent holds the vault lock for its whole life (a second agent, or any other writing command,
is refused with an error naming it), opens the app and the source once, and runs sessions
(:mod:`tobs_sync.agent_session`): catch up, then scheduled passes, live changes and the template and
config watchers. A valid config change ends the session and starts a new one with the new settings
(app, source, schedules and watchers rebuilt, starting with a catch-up); settings that fail to build
leave the ones in force, and templates that fail their check leave the previous session's templates
in force (on a fresh start, the agent waits for a fix: :mod:`tobs_sync.agent_session`). Decisions on
held deletions that ``tobs-sync deletions`` leaves while the agent runs are applied by the session
(:mod:`tobs_sync.deletion_requests`).

Shutdown: the first SIGINT or SIGTERM stops taking work and cancels what is under way: the store
keeps every batch committed so far, with its cursor, so the next start reads only what was not;
the app is then closed (marked unclean if a pass was cut short, so the next writer removes the temp
files it may have left) and the agent returns 0. A second signal exits the process at once
(status 128 + signal): the vault is then as after a crash, which the durability protocol makes safe.
Limits: signal handling needs a POSIX event loop (Windows: Ctrl+C ends the process as a crash
would); settings of the connection itself (``api_id``, ``session_dir``) apply at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from tobs_sync.agent_schedule import WallClock, local_now
from tobs_sync.agent_session import AgentSession, PassHook, log_pass
from tobs_sync.app import App
from tobs_sync.config import Settings, load_settings
from tobs_sync.errors import TobsError
from tobs_sync.lock import VaultLock
from tobs_sync.render import Renderer
from tobs_sync.sources.base import Source
from tobs_sync.store_passes import PassLog

log = logging.getLogger(__name__)

AGENT_COMMAND = "tobs-sync run"
OpenSource = Callable[[App], AbstractAsyncContextManager[Source]]
"""Opens the source for one session of an app (the same connection may serve every session)."""


class Agent:
    """Sessions over one vault, from :meth:`run` until :meth:`stop`."""

    def __init__(
        self, vault_root: Path, lock: VaultLock, open_source: OpenSource, *, clock: WallClock = local_now,
        on_pass: PassHook = log_pass, watch: bool = True, quiet_s: float | None = None,
    ) -> None:
        if not lock.held:
            raise ValueError("Agent: the vault lock must be held")
        self.vault_root = vault_root
        self._lock = lock
        self._open_source = open_source
        self._clock = clock
        self._on_pass = on_pass
        self._watch = watch
        self._quiet_s = quiet_s
        self._stop = asyncio.Event()
        self.session: AgentSession | None = None
        self._renderer: Renderer | None = None
        """The checked templates of the last session (kept in force if a new session's fail)."""
        self.sessions = 0

    def stop(self) -> None:
        """Stop taking work; :meth:`run` returns once the work under way has ended or been abandoned."""
        self._stop.set()

    async def run(self) -> None:
        """Run sessions until :meth:`stop`."""
        settings: Settings = load_settings(self.vault_root)
        app = App.open(self.vault_root, lock=self._lock, settings=settings)
        clean = False
        try:
            while not self._stop.is_set():
                abandoned, new_settings = await self._session(app)
                if new_settings is None or abandoned:
                    clean = not abandoned
                    break
                app = self._reopen(app, new_settings)
            else:
                clean = True
        finally:
            with contextlib.suppress(TobsError, sqlite3.Error):  # the agent stopped: nothing is scheduled
                PassLog(app.store).clear_next_runs()
            app.close(clean=clean)

    async def _session(self, app: App) -> tuple[bool, Settings | None]:
        async with self._open_source(app) as source:
            self.session = session = AgentSession(
                app, source, clock=self._clock, on_pass=self._on_pass, watch=self._watch, quiet_s=self._quiet_s,
                previous_renderer=self._renderer,
            )
            self.sessions += 1
            try:
                new_settings = await session.run(self._stop)
            finally:
                self._renderer = session.renderer or self._renderer
            return session.abandoned, new_settings

    def _reopen(self, app: App, settings: Settings) -> App:
        """The app rebuilt with ``settings``; if that fails, with the settings in force before."""
        previous = app.settings
        app.close(clean=True)
        try:
            return App.open(self.vault_root, lock=self._lock, settings=settings)
        except TobsError as error:
            log.error("config change not applied, the previous settings stay in force: %s", error)
            return App.open(self.vault_root, lock=self._lock, settings=previous)


def install_signal_handlers(agent: Agent) -> Callable[[], None]:
    """First SIGINT/SIGTERM: :meth:`Agent.stop`; a second: exit at once. Returns a function removing them."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def handle(signum: int) -> None:
        received.append(signum)
        if len(received) > 1:
            os._exit(128 + signum)
        log.warning("stopping: finishing the work under way (a second signal stops at once)")
        agent.stop()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers on this loop
            loop.add_signal_handler(signum, handle, signum)
            installed.append(signum)

    def remove() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return remove


async def run_agent(vault_root: Path, *, simulate: str | None = None, repair_permissions: bool = False,
                    on_pass: PassHook = log_pass) -> None:
    """``tobs-sync run``: the agent on the account (or on a simulated one) until SIGINT/SIGTERM.

    The lock is taken before the session is opened (it is shared with ``sync`` and ``login``); the
    client connects once and serves every session. ``simulate``: a simulator spec; with
    ``live_every_s`` in it, the simulated account changes on its own while the agent runs.
    """
    from tobs_sync.app import open_client
    from tobs_sync.sources.telegram import TelegramSource

    settings = load_settings(vault_root)
    with VaultLock(settings.state_dir, AGENT_COMMAND) as lock:
        simulated = None
        if simulate is not None:
            from tobs_sync.sim import SimulatedTelegram, parse_spec  # only demos, tests and benchmarks need it

            simulated = SimulatedTelegram(parse_spec(simulate))
            client = simulated.client(connected=False, raise_last_call_error=True, request_retries=3)
        else:
            client = open_client(settings, repair_permissions=repair_permissions)

        def open_source(app: App) -> AbstractAsyncContextManager[Source]:
            return TelegramSource(client, app.settings.telegram, peers=app.store)

        agent = Agent(vault_root, lock, open_source, on_pass=on_pass)
        remove_handlers = install_signal_handlers(agent)
        try:
            if simulated is not None and simulated.spec.live_every_s > 0:
                simulated.start_live()
            await agent.run()
        finally:
            remove_handlers()
            if simulated is not None:
                await simulated.stop_live()
            with contextlib.suppress(Exception):
                await client.disconnect()
