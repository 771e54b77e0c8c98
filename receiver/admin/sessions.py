"""The pages' sessions and login throttle, kept in Redis so that every receiver replica shares
them: a session lives until it is logged out, ended with all the others, or
:data:`~receiver.admin.auth.SESSION_SECONDS` have passed.

A session is kept under its name (:meth:`receiver.admin.auth.Keys.session_name`), never its
id; a sorted set of the names, scored by expiry, lets the admin end them all. Failed logins are
counted per client over :data:`LOGIN_WINDOW`; after :data:`LOGIN_LIMIT` of them the client is
refused (429) until the window has passed.

Every function takes a synchronous Redis connection and may raise ``RedisError``.
"""

from redis import Redis

from config import keys
from config.keys import PREFIX

SESSIONS = f"{PREFIX}:admin:sessions"
"""Sorted set of every session's name, scored by its expiry (Unix seconds)."""
LOGIN_LIMIT = 10
"""Failed logins a client may make in :data:`LOGIN_WINDOW`."""
LOGIN_WINDOW = 300
"""Seconds over which failed logins are counted."""


def _session(name: str) -> str:
    return f"{PREFIX}:admin:session:{name}"


def _logins(client: str) -> str:
    return f"{PREFIX}:admin:logins:{client[:100]}"


def start(conn: "Redis", name: str, now: float, seconds: int) -> None:
    expires = int(now) + seconds
    with conn.pipeline() as pipe:
        pipe.set(_session(name), str(expires), ex=seconds)
        pipe.zremrangebyscore(SESSIONS, "-inf", int(now))
        pipe.zadd(SESSIONS, {name: expires})
        pipe.expire(SESSIONS, seconds)
        pipe.execute()


def alive(conn: "Redis", name: str) -> bool:
    return bool(conn.exists(_session(name)))


def end(conn: "Redis", name: str) -> None:
    with conn.pipeline() as pipe:
        pipe.delete(_session(name))
        pipe.zrem(SESSIONS, name)
        pipe.execute()


def count(conn: "Redis", now: float) -> int:
    """Sessions not yet ended."""
    return int(conn.zcount(SESSIONS, f"({int(now)}", "+inf"))


def end_all(conn: "Redis", now: float) -> int:
    """End every session; how many were alive."""
    names = [keys.text(n) for n in conn.zrange(SESSIONS, 0, -1) if isinstance(n, bytes | str)]
    alive_ = count(conn, now)
    with conn.pipeline() as pipe:
        for name in names:
            pipe.delete(_session(name))
        pipe.delete(SESSIONS)
        pipe.execute()
    return alive_


def refused_for(conn: "Redis", client: str) -> int:
    """Seconds the client must wait before it may try to log in again (0: it may now)."""
    key = _logins(client)
    with conn.pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.ttl(key)
        failed, ttl = pipe.execute()
    if failed is None or int(failed) < LOGIN_LIMIT:
        return 0
    return max(int(ttl), 1)


def failed(conn: "Redis", client: str) -> None:
    """Count a failed login; the window starts with the first."""
    key = _logins(client)
    with conn.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, LOGIN_WINDOW, nx=True)
        pipe.execute()


def succeeded(conn: "Redis", client: str) -> None:
    conn.delete(_logins(client))
