"""Sentinel URLs: what they may say, how they are refused, and that no answer quotes them."""

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.sentinel import BadSentinelUrl, SentinelUrl, is_sentinel, parse

A, B = ("10.0.0.1", 26379), ("10.0.0.2", 26380)
NO_DB = "the database (after the service name) must be a whole number"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster",
            SentinelUrl((A, B), "mymaster"),
        ),
        (
            "redis+sentinel://10.0.0.1,10.0.0.2:26380/mymaster/3",
            SentinelUrl((A, B), "mymaster", db=3),
        ),
        ("redis+sentinel://10.0.0.1/mymaster/", SentinelUrl((A,), "mymaster")),
        (
            "REDIS+SENTINEL://sentinel-0.redis.svc:26379/my_master.1-a/15",
            SentinelUrl((("sentinel-0.redis.svc", 26379),), "my_master.1-a", db=15),
        ),
        (
            "redis+sentinel://[::1]:5000,[fd00::2]/m",
            SentinelUrl((("::1", 5000), ("fd00::2", 26379)), "m"),
        ),
        # The credentials are the data nodes' and, by default, the Sentinels' too.
        (
            "redis+sentinel://:pa%2Fss%40w0rd@10.0.0.1/m",
            SentinelUrl((A,), "m", password="pa/ss@w0rd", sentinel_password="pa/ss@w0rd"),
        ),
        (
            "redis+sentinel://app:s3cret@10.0.0.1/m/2",
            SentinelUrl(
                (A,),
                "m",
                db=2,
                username="app",
                password="s3cret",
                sentinel_username="app",
                sentinel_password="s3cret",
            ),
        ),
        # The Sentinels' own password, or none.
        (
            "redis+sentinel://:data@10.0.0.1/m?sentinel_password=watch%2Bers",
            SentinelUrl((A,), "m", password="data", sentinel_password="watch+ers"),
        ),
        (
            "redis+sentinel://app:data@10.0.0.1/m?sentinel_password=",
            SentinelUrl((A,), "m", username="app", password="data"),
        ),
        (
            "redis+sentinel://10.0.0.1/m?sentinel_username=watcher&sentinel_password=w",
            SentinelUrl((A,), "m", sentinel_username="watcher", sentinel_password="w"),
        ),
        # TLS, to the Sentinels and the data nodes alike.
        ("rediss+sentinel://10.0.0.1/m", SentinelUrl((A,), "m", tls=True)),
        (
            "rediss+sentinel://10.0.0.1/m?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=Required"
            "&ssl_check_hostname=false",
            SentinelUrl(
                (A,),
                "m",
                tls=True,
                tls_options=(
                    ("ssl_ca_certs", "/etc/ca.pem"),
                    ("ssl_cert_reqs", "required"),
                    ("ssl_check_hostname", False),
                ),
            ),
        ),
    ],
)
def test_good_urls(url: str, expected: SentinelUrl) -> None:
    assert is_sentinel(url)
    assert parse(url) == expected


def test_tls_keyword_arguments() -> None:
    address = parse("rediss+sentinel://h/m?ssl_cert_reqs=none&ssl_certfile=/c.pem")
    assert address.ssl == {"ssl": True, "ssl_cert_reqs": "none", "ssl_certfile": "/c.pem"}
    assert parse("redis+sentinel://h/m").ssl == {}


@pytest.mark.parametrize(
    ("url", "location"),
    [
        (
            "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster/0",
            "sentinel 10.0.0.1:26379,10.0.0.2:26379/mymaster/0",
        ),
        ("redis+sentinel://u:pw@h/m?sentinel_password=spw", "sentinel h:26379/m/0"),
        ("rediss+sentinel://[::1]:7/m/4", "sentinel [::1]:7/m/4"),
    ],
)
def test_the_location_names_the_sentinels_service_and_db_only(url: str, location: str) -> None:
    address = parse(url)
    assert address.location == location
    assert repr(address) == f"SentinelUrl({location!r})"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h/m", "the scheme must be redis+sentinel:// or rediss+sentinel://"),
        ("redis+sentinel:/h/m", "the scheme must be redis+sentinel:// or rediss+sentinel://"),
        ("redis+sentinel:///m", "no Sentinel host:port before the service name"),
        ("redis+sentinel://:pw@/m", "no Sentinel host:port before the service name"),
        ("redis+sentinel://h", "no service name: end the URL with /SERVICE_NAME or /SERVICE/DB"),
        ("redis+sentinel://h/", "no service name: end the URL with /SERVICE_NAME or /SERVICE/DB"),
        ("redis+sentinel://h//0", "no service name: end the URL with /SERVICE_NAME or /SERVICE/DB"),
        (
            "redis+sentinel://h/m/0/x",
            "too many path segments: the path is /SERVICE_NAME or /SERVICE/DB",
        ),
        ("redis+sentinel://h/m%20n", "the service name is letters, digits, . - _"),
        ("redis+sentinel://h/m/x", NO_DB),
        ("redis+sentinel://h/m/-1", NO_DB),
        ("redis+sentinel://h/m/\uff11", NO_DB),  # a fullwidth digit one
        ("redis+sentinel://h:0/m", "Sentinel 1 of 1: the port must be a number from 1 to 65535"),
        (
            "redis+sentinel://a:1,b:65536/m",
            "Sentinel 2 of 2: the port must be a number from 1 to 65535",
        ),
        (
            "redis+sentinel://a:1,b:x/m",
            "Sentinel 2 of 2: the port must be a number from 1 to 65535",
        ),
        ("redis+sentinel://a:1,,b/m", "Sentinel 2 of 3: no host"),
        ("redis+sentinel://a:1,:2/m", "Sentinel 2 of 2: no host"),
        (
            "redis+sentinel://a b/m",
            "Sentinel 1 of 1: a host name is letters, digits, . - _ "
            "(percent-encode / ? # @ & in passwords)",
        ),
        ("redis+sentinel://[::1/m", "Sentinel 1 of 1: an IPv6 address is written [ADDRESS]:PORT"),
        ("redis+sentinel://[::1]x/m", "Sentinel 1 of 1: an IPv6 address is written [ADDRESS]:PORT"),
        ("redis+sentinel://[zz]/m", "Sentinel 1 of 1: not an IPv6 address"),
        # An unescaped / ? # in the password leaves an @ after the hosts.
        (
            "redis+sentinel://:pa/ss@h/m",
            "an @ follows the hosts (percent-encode / ? # @ & in passwords)",
        ),
        (
            "redis+sentinel://:pa?ss@h/m",
            "an @ follows the hosts (percent-encode / ? # @ & in passwords)",
        ),
        (
            "redis+sentinel://:pa#ss@h/m",
            "an @ follows the hosts (percent-encode / ? # @ & in passwords)",
        ),
        (
            "redis+sentinel://h/m#frag",
            "a # has no place in a Sentinel URL (percent-encode / ? # @ & in passwords)",
        ),
        (
            "redis+sentinel://h/m?password=x",
            "an unknown option (known: sentinel_username, sentinel_password, ssl_ca_certs, "
            "ssl_certfile, ssl_keyfile, ssl_cert_reqs, ssl_check_hostname)",
        ),
        (
            "redis+sentinel://h/m?sentinel_password=a&b",
            "the options are not name=value pairs joined by & "
            "(percent-encode / ? # @ & in passwords)",
        ),
        (
            "redis+sentinel://h/m?sentinel_password=a&sentinel_password=b",
            "the option sentinel_password is given twice",
        ),
        (
            "redis+sentinel://h/m?ssl_cert_reqs=none",
            "the option ssl_cert_reqs needs TLS: use rediss+sentinel://",
        ),
        (
            "rediss+sentinel://h/m?ssl_cert_reqs=maybe",
            "ssl_cert_reqs must be one of none, optional, required",
        ),
        ("rediss+sentinel://h/m?ssl_check_hostname=2", "ssl_check_hostname must be true or false"),
        ("rediss+sentinel://h/m?ssl_ca_certs=", "the option ssl_ca_certs needs a file path"),
    ],
)
def test_bad_urls_are_refused_saying_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(BadSentinelUrl) as refused:
        parse(url)
    assert str(refused.value) == message


@pytest.mark.parametrize("url", ["redis://h:1/0", "rediss://h", "unix:///s", "sentinel://h/m"])
def test_other_urls_are_not_sentinel_urls(url: str) -> None:
    assert not is_sentinel(url)


# The password is made of letters no message uses (Q, X, Z) and of every character that
# moves a piece of an unescaped password elsewhere in a URL.
PASSWORDS = st.text(alphabet="QXZ/?#@&:,[]%=+ ;", min_size=1, max_size=12).map(lambda t: "Q" + t)
TEMPLATES = [
    "redis+sentinel://:{pw}@10.0.0.1:26379,10.0.0.2/svc/1",
    "redis+sentinel://user:{pw}@[::1]:26379/svc",
    "rediss+sentinel://10.0.0.1/svc?sentinel_password={pw}",
    "redis+sentinel://:{pw}@h/svc?sentinel_username=w&sentinel_password={pw}",
]


@given(password=PASSWORDS, template=st.sampled_from(TEMPLATES))
def test_a_password_is_never_quoted(password: str, template: str) -> None:
    """Written as is, a password may break the URL; the answer then quotes no piece of it.
    Percent-encoded, it always reads back exactly."""
    try:
        address = parse(template.format(pw=password))
    except BadSentinelUrl as exc:
        assert not set(str(exc)) & set("QXZ")
    else:
        assert not set(address.location + repr(address)) & set("QXZ")
    encoded = parse(template.format(pw=quote(password, safe="")))
    assert password in (encoded.password, encoded.sentinel_password)
    assert not set(encoded.location + repr(encoded)) & set("QXZ")
