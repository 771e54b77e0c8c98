"""What the admin API and pages read and change in Redis, through the same ``config`` modules the
command line uses (events, dead letters, silences, replays).

Those are synchronous; the endpoints run each call of a :class:`Store` in a worker thread, so
the event loop that accepts webhooks never waits for them. Every method may raise
``RedisError``.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from config import activity, deadletters, eventlog, incidents, routejobs, silences
from config.eventlog import Filters
from receiver import jobs
from receiver.admin import health, reports, sessions


class NoSuchEvent(LookupError):
    pass


class Store:
    def __init__(
        self,
        conn: "Redis",
        *,
        retention: float,
        clock: Callable[[], float],
    ) -> None:
        self.conn = conn
        self.retention = retention
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # events

    def events(
        self, filters: Filters, limit: int, offset: int, text: str | None = None
    ) -> tuple[int, list[dict[str, Any]]]:
        """A page of the events ``filters`` pass, newest first; with ``text``, only those whose
        id, flow name, flow id or error contains it (case aside): every event of the window is
        read then."""
        if text is None:
            total, found = eventlog.search(self.conn, filters, limit=limit, offset=offset)
            return total, [reports.row(e) for e in found]
        total, page = 0, []
        for event in eventlog.matching(self.conn, filters, text):
            if offset <= total < offset + limit:
                page.append(reports.row(event))
            total += 1
        return total, page

    def silence_preview(self, matchers: list[str], hours: float) -> int:
        """How many events received in the last ``hours`` a silence of ``matchers`` would
        match; raise ``ValueError`` for a matcher that cannot be used."""
        return silences.would_match(
            matchers, eventlog.received_within(self.conn, hours, self.clock())
        )

    def find(self, event_id: str, source: str | None = None) -> list[str]:
        """Refs of the events with this id (in ``source``); ``event_id`` may be a ref."""
        return eventlog.find(self.conn, event_id, source)

    def _load(self, ref: str) -> eventlog.StoredEvent | None:
        """The stored event; ``None`` also for a record that cannot be read."""
        try:
            stored = eventlog.load(self.conn, ref)
        except ValueError:
            return None
        return stored if stored is not None and isinstance(stored.event, dict) else None

    def event(self, ref: str) -> dict[str, Any] | None:
        stored = self._load(ref)
        return reports.detail(stored) if stored is not None else None

    def replay(self, ref: str, *, force: bool) -> routejobs.Replayed:
        """Raise :class:`NoSuchEvent` or :class:`config.routejobs.Busy`."""
        stored = self._load(ref)
        if stored is None:
            raise NoSuchEvent(ref)
        return routejobs.replay(
            self.conn,
            stored,
            force=force,
            failure_ttl=self.retention,
            retry=jobs.ROUTE_RETRY,
        )

    def summary(self, hours: float) -> dict[str, Any]:
        until = int(self.clock() * 1000)
        since = until - int(hours * 3600 * 1000)
        window = Filters(since_ms=since, until_ms=until)
        found = reports.summary(eventlog.scan(self.conn, window, timelines=True))
        return {
            "windowHours": hours,
            "since": _iso(since),
            "until": _iso(until),
            **found,
        }

    def overview(self, minutes: int) -> dict[str, Any]:
        return health.overview(self.conn, self.clock(), minutes)

    # incidents

    def incidents(self) -> list[dict[str, Any]]:
        return [i.to_json() for i in incidents.every(self.conn)]

    def acknowledge(self, incident_id: str, by: str) -> bool:
        return incidents.acknowledge(self.conn, incident_id, by, self.clock())

    def resolve(self, incident_id: str) -> bool:
        return incidents.resolve(self.conn, incident_id)

    # deliveries

    def actions(self) -> list[str]:
        return activity.actions(self.conn)

    def attempts(self, action: str, outcome: str | None) -> list[dict[str, Any]]:
        """The action's latest attempts, newest first, of one outcome if asked."""
        found = activity.attempts(self.conn, action)
        return [a for a in found if outcome is None or a.get("outcome") == outcome]

    # sessions

    def end_sessions(self) -> int:
        return sessions.end_all(self.conn, self.clock())

    # dead letters

    def dead_letters(self, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        """The newest first."""
        ids = deadletters.ids(self.conn, offset=offset, limit=limit, newest=True)
        return deadletters.count(self.conn), deadletters.summaries(self.conn, ids)

    def dead_matching(self, action: str | None, reason: str | None) -> list[dict[str, Any]]:
        return deadletters.matching(self.conn, action=action, reason=reason)

    def replay_matching(self, action: str | None, reason: str | None) -> tuple[int, int]:
        return deadletters.replay_matching(self.conn, action=action, reason=reason)

    def replay_dead(self, job_id: str) -> None:
        """Raise :class:`config.deadletters.Missing`."""
        deadletters.replay(self.conn, job_id)

    def delete_dead(self, job_id: str) -> None:
        """Raise :class:`config.deadletters.Missing`."""
        deadletters.delete(self.conn, job_id)

    # silences

    def silences(self, *, ended: bool) -> list[dict[str, Any]]:
        """The silences not yet ended (with ``ended``, also those that have)."""
        now = self.now()
        found = silences.every(self.conn)
        return [reports.silence(s, now) for s in found if ended or s.ends_at > now]

    def add_silence(self, **fields: Any) -> dict[str, Any]:
        """Raise ``ValueError`` for a bad matcher or end."""
        now = self.now()
        return reports.silence(silences.create(self.conn, now=now, **fields), now)

    def expire_silence(self, silence_id: str) -> dict[str, Any] | None:
        now = self.now()
        ended = silences.expire(self.conn, silence_id, now)
        return reports.silence(ended, now) if ended is not None else None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()
