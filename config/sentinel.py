"""Sentinel URLs, which redis-py does not read:
``redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/DB][?OPTIONS]``, and
``rediss+sentinel://`` for TLS to the Sentinels and the data nodes alike.

The user and password are for the data nodes and, unless the options say otherwise, for the
Sentinels too (a Sentinel group usually shares one password). Options:

- ``sentinel_password``, ``sentinel_username``: the Sentinels' own credentials instead; an
  empty ``sentinel_password=`` means Sentinels without a password.
- ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` (paths), ``ssl_cert_reqs``
  (``none``, ``optional``, ``required``), ``ssl_check_hostname`` (``true``/``false``):
  TLS settings, ``rediss+sentinel://`` only.

A port left out is Sentinel's 26379, a DB left out is 0. Pure: this module opens nothing.
Its errors say what is wrong and where without quoting any of the URL, since an unescaped
``/ ? # @`` in a password moves part of it into whichever piece comes next.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
"""A Sentinel URL's scheme, and whether it means TLS."""
DEFAULT_PORT = 26379
CREDENTIAL_OPTIONS = ("sentinel_username", "sentinel_password")
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
CERT_REQS = ("none", "optional", "required")
BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}

_HOST = re.compile(r"[A-Za-z0-9._-]+")
_SERVICE = re.compile(r"[A-Za-z0-9._-]+")
_ESCAPE = "percent-encode / ? # @ & in passwords"


class BadSentinelUrl(ValueError):
    """What is wrong with a Sentinel URL, in words that quote none of it."""


@dataclass(frozen=True, repr=False)
class SentinelUrl:
    """A parsed Sentinel URL. ``repr`` and :attr:`location` show no credentials."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    """For the data nodes."""
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    """For the Sentinels: the URL's credentials unless the options name others."""
    tls: bool = False
    tls_options: tuple[tuple[str, str | bool], ...] = ()

    @property
    def location(self) -> str:
        """``sentinel HOST:PORT,HOST:PORT/SERVICE/DB``, safe to log."""
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.sentinels)
        return f"sentinel {hosts}/{self.service}/{self.db}"

    @property
    def ssl(self) -> Mapping[str, str | bool]:
        """redis-py's TLS keyword arguments (empty without TLS)."""
        return {"ssl": True, **dict(self.tls_options)} if self.tls else {}

    def __repr__(self) -> str:
        return f"SentinelUrl({self.location!r})"


def is_sentinel(url: str) -> bool:
    """Whether ``url`` is a Sentinel URL (by its scheme; it may still be malformed)."""
    scheme, _, _ = url.partition("://")
    return scheme.lower() in SCHEMES


def parse(url: str) -> SentinelUrl:
    """Read a Sentinel URL; raise :class:`BadSentinelUrl` saying what is wrong."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in SCHEMES:
        raise BadSentinelUrl("the scheme must be redis+sentinel:// or rediss+sentinel://")
    tls = SCHEMES[scheme.lower()]
    # Split by hand where urlsplit would choke on a list of hosts (it reads one port).
    netloc, path, query = _split(rest)
    credentials, at, hosts = netloc.rpartition("@")
    username, password = _credentials(credentials) if at else (None, None)
    service, db = _path(path)
    options = _options(query, tls)
    sentinel_username = username
    sentinel_password = password
    if "sentinel_password" in options or "sentinel_username" in options:
        sentinel_username = _text(options.get("sentinel_username"))
        sentinel_password = _text(options.get("sentinel_password"))
    tls_options = tuple((k, v) for k, v in options.items() if k in TLS_OPTIONS)
    return SentinelUrl(
        sentinels=_hosts(hosts),
        service=service,
        db=db,
        username=username,
        password=password,
        sentinel_username=sentinel_username,
        sentinel_password=sentinel_password,
        tls=tls,
        tls_options=tls_options,
    )


def _split(rest: str) -> tuple[str, str, str]:
    """``netloc``, ``path``, ``query`` of what follows ``://``; refuse a fragment, and an
    ``@`` past the hosts (a password's unescaped ``/ ? #`` moved it there)."""
    netloc_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:netloc_end], rest[netloc_end:]
    if "@" in tail:
        raise BadSentinelUrl(f"an @ follows the hosts ({_ESCAPE})")
    if "#" in tail:
        raise BadSentinelUrl(f"a # has no place in a Sentinel URL ({_ESCAPE})")
    parts = urlsplit("x://h" + tail)
    return netloc, parts.path, parts.query


def _credentials(text: str) -> tuple[str | None, str | None]:
    user, colon, password = text.partition(":")
    return _text(unquote(user)), _text(unquote(password)) if colon else None


def _text(value: str | bool | None) -> str | None:
    return value if isinstance(value, str) and value else None


def _hosts(text: str) -> tuple[tuple[str, int], ...]:
    if not text:
        raise BadSentinelUrl("no Sentinel host:port before the service name")
    items = text.split(",")
    return tuple(_host(item, n, len(items)) for n, item in enumerate(items, 1))


def _host(item: str, n: int, count: int) -> tuple[str, int]:
    where = f"Sentinel {n} of {count}"
    if item.startswith("["):
        host, bracket, port_text = item[1:].partition("]")
        if not bracket or not host or (port_text and not port_text.startswith(":")):
            raise BadSentinelUrl(f"{where}: an IPv6 address is written [ADDRESS]:PORT")
        if not re.fullmatch(r"[0-9A-Fa-f:.]+", host):
            raise BadSentinelUrl(f"{where}: not an IPv6 address")
        port_text = port_text[1:]
    else:
        host, _, port_text = item.partition(":")
        if not host:
            raise BadSentinelUrl(f"{where}: no host")
        if not _HOST.fullmatch(host):
            raise BadSentinelUrl(f"{where}: a host name is letters, digits, . - _ ({_ESCAPE})")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BadSentinelUrl(f"{where}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def _path(path: str) -> tuple[str, int]:
    segments = path.split("/")[1:] if path else []
    if segments and segments[-1] == "" and len(segments) > 1:
        segments.pop()  # a trailing slash
    if not segments or not segments[0]:
        raise BadSentinelUrl("no service name: end the URL with /SERVICE_NAME or /SERVICE/DB")
    if len(segments) > 2:
        raise BadSentinelUrl("too many path segments: the path is /SERVICE_NAME or /SERVICE/DB")
    service = unquote(segments[0])
    if not _SERVICE.fullmatch(service):
        raise BadSentinelUrl("the service name is letters, digits, . - _")
    db_text = segments[1] if len(segments) == 2 else "0"
    if not db_text.isascii() or not db_text.isdigit() or len(db_text) > 5:
        raise BadSentinelUrl("the database (after the service name) must be a whole number")
    return service, int(db_text)


def _options(query: str, tls: bool) -> dict[str, str | bool]:
    known = CREDENTIAL_OPTIONS + TLS_OPTIONS
    options: dict[str, str | bool] = {}
    for pair in query.split("&") if query else ():
        # unquote, not parse_qsl's unquote_plus: a + in a password stays a +.
        name, equals, value = (unquote(piece) for piece in pair.partition("="))
        if not equals:
            raise BadSentinelUrl(f"the options are not name=value pairs joined by & ({_ESCAPE})")
        if name not in known:
            # The name is not quoted: an unescaped & in a password makes one of its pieces.
            raise BadSentinelUrl(f"an unknown option (known: {', '.join(known)})")
        if name in options:
            raise BadSentinelUrl(f"the option {name} is given twice")
        options[name] = _option(name, value, tls)
    return options


def _option(name: str, value: str, tls: bool) -> str | bool:
    if name in CREDENTIAL_OPTIONS:
        return value
    if not tls:
        raise BadSentinelUrl(f"the option {name} needs TLS: use rediss+sentinel://")
    if name == "ssl_cert_reqs":
        if value.lower() not in CERT_REQS:
            raise BadSentinelUrl(f"ssl_cert_reqs must be one of {', '.join(CERT_REQS)}")
        return value.lower()
    if name == "ssl_check_hostname":
        if value.lower() not in BOOLEANS:
            raise BadSentinelUrl("ssl_check_hostname must be true or false")
        return BOOLEANS[value.lower()]
    if not value:
        raise BadSentinelUrl(f"the option {name} needs a file path")
    return value
