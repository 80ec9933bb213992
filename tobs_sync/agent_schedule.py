"""The agent's schedules: which chats share a scheduled pass, and when each pass runs next.

Every chat gets its schedule from the first ``[[chat]]`` table that selects it and sets ``every`` or
``cron`` (:func:`tobs_sync.chat_rules.rule_for`); a chat no table schedules follows ``[agent] every``.
Chats sharing a schedule share one job, keyed ``chat[N]`` (the table's place in the config, from 1)
or ``default``; the job's pass reads only the chats whose key it is, so a chat is never in two jobs.

Jobs run on APScheduler's :class:`AsyncIOScheduler` with ``coalesce`` and ``max_instances=1``: a pass
still running when its next run comes is not started twice, and runs missed while the computer slept
run once on waking (``misfire_grace_time=None``: however late). The event loop's timers do not count
time spent suspended, so the scheduler never waits longer than :data:`MAX_WAIT_S` before it looks at
the wall clock again: a pass missed during a sleep runs at most that long after waking.
Limits: one timer wake-up per :data:`MAX_WAIT_S` while idle (it only compares times); a chat
first seen by a pass is scheduled by the rules as they are, with no restart needed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from tobs_sync.chat_rules import ChatRule, rule_for
from tobs_sync.config import Settings
from tobs_sync.model import Chat

DEFAULT_KEY = "default"
MAX_WAIT_S = 60.0
"""The longest the scheduler sleeps on the event loop's clock before it reads the wall clock again."""
"""In the state folder: when each scheduled pass runs next, for ``status``."""

WallClock = Callable[[], dt.datetime]
RunPass = Callable[[str], Awaitable[None]]


def local_now() -> dt.datetime:
    return dt.datetime.now().astimezone()


def schedule_key(chat: Chat, rules: Sequence[ChatRule]) -> str:
    """The job that syncs ``chat``: ``chat[N]`` for the N-th ``[[chat]]`` table scheduling it, else ``default``."""
    rule = rule_for(chat, rules, "every_s")
    if rule is None:
        return DEFAULT_KEY
    number = next(index for index, candidate in enumerate(rules, start=1) if candidate is rule)
    return f"chat[{number}]"


@dataclass(frozen=True, slots=True)
class Schedule:
    """One job: its key and when it fires (``every_s`` seconds, or a crontab expression)."""

    key: str
    every_s: float | None = None
    cron: str | None = None

    def trigger(self, now: dt.datetime) -> BaseTrigger:
        """The trigger, first firing after ``now`` (the start-up pass has just run)."""
        if self.cron is not None:
            return CronTrigger.from_crontab(self.cron, timezone=now.tzinfo)
        if self.every_s is None:
            raise ValueError(f"schedule {self.key}: neither every nor cron")
        return IntervalTrigger(seconds=self.every_s, start_date=now + dt.timedelta(seconds=self.every_s),
                               timezone=now.tzinfo)

    def describe(self) -> str:
        return f"cron {self.cron!r}" if self.cron is not None else f"every {self.every_s:g} s"


def plan_schedules(settings: Settings) -> list[Schedule]:
    """The default job and one job per ``[[chat]]`` table that sets ``every`` or ``cron``."""
    plan = [Schedule(DEFAULT_KEY, every_s=settings.agent.every_s)]
    for number, rule in enumerate(settings.chat_rules, start=1):
        if rule.has_schedule:
            plan.append(Schedule(f"chat[{number}]", every_s=rule.every_s, cron=rule.cron))
    return plan


class _WakingScheduler(AsyncIOScheduler):
    """An :class:`AsyncIOScheduler` that never sleeps longer than :data:`MAX_WAIT_S` (see the module)."""

    def _start_timer(self, wait_seconds: float | None) -> None:
        super()._start_timer(None if wait_seconds is None else min(wait_seconds, MAX_WAIT_S))


class PassScheduler:
    """The agent's jobs on the running event loop: ``run_pass(key)`` for each schedule when it is due."""

    def __init__(self, run_pass: RunPass, *, clock: WallClock = local_now) -> None:
        self._run_pass = run_pass
        self._clock = clock
        self._scheduler = _WakingScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )
        self.schedules: list[Schedule] = []

    def start(self, schedules: Sequence[Schedule]) -> None:
        """Add the jobs (replacing any) and start the scheduler if it is not running."""
        now = self._clock()
        self._scheduler.remove_all_jobs()
        for schedule in schedules:
            trigger = schedule.trigger(now)
            self._scheduler.add_job(
                self._job, trigger, args=(schedule.key,), id=schedule.key, name=f"pass {schedule.key}",
                next_run_time=trigger.get_next_fire_time(None, now),
            )
        self.schedules = list(schedules)
        if not self._scheduler.running:
            self._scheduler.start()

    async def _job(self, key: str) -> None:
        await self._run_pass(key)  # a coroutine function: APScheduler awaits it on the loop

    def next_runs(self) -> dict[str, dt.datetime]:
        """When each job runs next, by key."""
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs() if job.next_run_time is not None}

    def shutdown(self) -> None:
        """Start no job from now on (a pass already running is the caller's to end)."""
        if self._scheduler.running:
            self._scheduler.remove_all_jobs()
            self._scheduler.shutdown(wait=False)


def next_runs_by_chat(
    runs: Mapping[str, dt.datetime], chats: Sequence[Chat], rules: Sequence[ChatRule]
) -> dict[int, dt.datetime]:
    """Each known chat's next scheduled pass (the next run of its job)."""
    result = {}
    for chat in chats:
        when = runs.get(schedule_key(chat, rules))
        if when is not None:
            result[chat.id] = when
    return result
