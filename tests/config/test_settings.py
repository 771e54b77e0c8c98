"""Process settings from ``FLOWHOOKS_*`` environment variables."""

import os
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import Settings
from tests.support import run_process

PASSWORD = "r3dis-pa55w0rd-never-shown"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the whole environment: start each test from none of ours."""
    for name in list(os.environ):
        if name.upper().startswith("FLOWHOOKS_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings()
    assert settings.redis_url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert settings.config == Path("flowhooks.yaml")
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.dedup_ttl == 7 * 24 * 3600
    assert settings.event_retention == 7 * 24 * 3600
    assert settings.log_format == "json"
    assert settings.log_level == "INFO"
    assert settings.redis_location == "127.0.0.1:6379/0"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWHOOKS_REDIS_URL", "redis://redis.internal:6380/3")
    monkeypatch.setenv("FLOWHOOKS_CONFIG", "/etc/flowhooks/flowhooks.yaml")
    monkeypatch.setenv("FLOWHOOKS_MAX_BODY_BYTES", "65536")
    monkeypatch.setenv("FLOWHOOKS_DEDUP_TTL", "3d")
    monkeypatch.setenv("FLOWHOOKS_EVENT_RETENTION", "1h30m")
    monkeypatch.setenv("FLOWHOOKS_LOG_FORMAT", "text")
    monkeypatch.setenv("FLOWHOOKS_BODY_TIMEOUT", "2.5")
    settings = Settings()
    assert settings.redis_url.get_secret_value() == "redis://redis.internal:6380/3"
    assert settings.redis_location == "redis.internal:6380/3"
    assert settings.config == Path("/etc/flowhooks/flowhooks.yaml")
    assert settings.max_body_bytes == 65536
    assert settings.dedup_ttl == 3 * 86400
    assert settings.event_retention == 5400
    assert settings.log_format == "text"
    assert settings.body_timeout == 2.5


def test_names_are_case_insensitive_and_unrelated_variables_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("flowhooks_log_format", "text")
    monkeypatch.setenv("FLOWHOOKS_SOMETHING_ELSE", "x")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:1/0")
    settings = Settings()
    assert settings.log_format == "text"
    assert settings.redis_location == "127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_FORMAT", "xml"),
        ("LOG_FORMAT", "JSON "),
        ("MAX_BODY_BYTES", "1MiB"),
        ("MAX_BODY_BYTES", "0"),
        ("MAX_BODY_BYTES", "-1"),
        ("DEDUP_TTL", "a week"),
        ("DEDUP_TTL", "0"),
        ("DEDUP_TTL", "-3d"),
        ("EVENT_RETENTION", "0.5"),
        ("EVENT_RETENTION", "nan"),
        ("REDIS_TIMEOUT", "0"),
        ("BODY_TIMEOUT", "0s"),
        ("JOB_TIMEOUT", "500ms"),
        ("RETRY_AFTER", "-1"),
    ],
)
def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """Zero expiries in particular: Redis refuses ``SET ... PX 0``, which would turn every
    write into a 503."""
    monkeypatch.setenv(f"FLOWHOOKS_{name}", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert [err["loc"] for err in caught.value.errors()] == [(name.lower(),)]


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("DEBUG", "DEBUG"),
        ("info", "INFO"),
        ("Warning", "WARNING"),
        ("error", "ERROR"),
        ("critical", "CRITICAL"),
    ],
)
def test_the_log_level_is_a_known_level_in_any_case(
    monkeypatch: pytest.MonkeyPatch, value: str, level: str
) -> None:
    monkeypatch.setenv("FLOWHOOKS_LOG_LEVEL", value)
    assert Settings().log_level == level


@pytest.mark.parametrize("value", ["verbose", "TRACE", "WARN", "info ", "", "10"])
def test_an_unknown_log_level_is_refused_with_the_levels_known(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FLOWHOOKS_LOG_LEVEL", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert [(err["loc"], err["msg"]) for err in caught.value.errors()] == [
        (
            ("log_level",),
            f"unknown level {value!r} (use one of DEBUG, INFO, WARNING, ERROR, CRITICAL)",
        )
    ]


def test_the_smallest_expiries_redis_accepts_are_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWHOOKS_DEDUP_TTL", "1ms")
    monkeypatch.setenv("FLOWHOOKS_EVENT_RETENTION", "1s")
    settings = Settings()
    assert (settings.dedup_ttl, settings.event_retention) == (0.001, 1.0)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.max_body_bytes = 1  # type: ignore[misc]


class TestRedisUrlIsASecret:
    def test_the_password_is_not_in_repr_str_or_location(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("FLOWHOOKS_REDIS_URL", f"redis://default:{PASSWORD}@cache:6379/1")
        settings = Settings()
        assert settings.redis_url.get_secret_value().endswith("@cache:6379/1")
        for shown in (repr(settings), str(settings), settings.model_dump_json()):
            assert PASSWORD not in shown
        assert settings.redis_location == "cache:6379/1"

    @pytest.mark.parametrize(
        ("url", "location"),
        [
            ("redis://localhost", "localhost:6379/0"),
            ("redis://localhost/", "localhost:6379/0"),
            (f"rediss://:{PASSWORD}@[::1]:7000/2", "[::1]:7000/2"),
            (f"redis://:{PASSWORD}@cache.example.com:6380", "cache.example.com:6380/0"),
            (f"unix://:{PASSWORD}@/run/redis.sock?db=2", "unix:/run/redis.sock"),
            ("redis://:r3dis@pa55w0rd@cache/0", "cache:6379/0"),
        ],
    )
    def test_the_location_is_safe_to_log(self, url: str, location: str) -> None:
        settings = Settings(redis_url=url)
        assert settings.redis_location == location
        for fragment in ("r3dis", "pa55w0rd"):
            assert fragment not in settings.redis_location
            assert fragment not in repr(settings)

    @pytest.mark.parametrize(
        "url",
        [
            # An unescaped / or @ in the password moves part of it into the port or the path,
            # where Redis' client would quote it in an error.
            "redis://user:r3dis/pa55w0rd@cache:6379/0",
            "redis://:123/r3dis-pa55w0rd@cache/0",
            "unix://:r3dis/pa55w0rd@/run/redis.sock",
            "redis://cache:99999/0",
            "redis://[::1",
            "not a url",
        ],
    )
    def test_an_unparseable_url_is_refused_without_quoting_it(self, url: str) -> None:
        with pytest.raises(ValidationError) as refused:
            Settings(redis_url=url)
        [error] = refused.value.errors(include_input=False)
        assert error["msg"] == ("not a valid Redis URL (percent-encode / ? # @ in the password)")
        for fragment in ("r3dis", "pa55w0rd"):
            assert fragment not in str(refused.value)


def test_settings_can_be_built_from_a_mapping_too() -> None:
    settings = Settings.model_validate({"redis_url": "redis://h:1/0", "dedup_ttl": "90s"})
    assert settings.dedup_ttl == 90
    assert settings.redis_location == "h:1/0"


def test_importing_the_processes_reads_no_environment_and_opens_no_socket() -> None:
    """Nothing reads ``FLOWHOOKS_*`` at import time: a broken value fails no import, and no
    module opens a connection while being imported."""
    script = textwrap.dedent(
        """
        import sys

        opened = []

        def audit(event, args):
            if event.startswith("socket.") or event == "subprocess.Popen":
                opened.append(event)

        sys.addaudithook(audit)
        import config.settings
        import receiver.app
        import workers.tasks
        import workers.worker
        import flowhooks.cli
        print("opened:", sorted(set(opened)))
        """
    )
    env = {
        "FLOWHOOKS_REDIS_URL": "redis://:garbage@[not-a-host:/x",
        "FLOWHOOKS_MAX_BODY_BYTES": "lots",
        "FLOWHOOKS_DEDUP_TTL": "forever",
        "FLOWHOOKS_LOG_FORMAT": "xml",
        "FLOWHOOKS_CONFIG": "/nonexistent/flowhooks.yaml",
        "PATH": "/usr/bin:/bin",
    }
    done = run_process([sys.executable, "-c", script], env, Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout == "opened: []\n"


class TestSentinelUrl:
    def test_a_sentinel_url_is_accepted_and_located_without_its_password(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        url = f"redis+sentinel://:{PASSWORD}@10.0.0.1:26379,10.0.0.2:26379/mymaster/2"
        monkeypatch.setenv("FLOWHOOKS_REDIS_URL", url)
        settings = Settings()
        assert settings.redis_url.get_secret_value() == url
        assert settings.redis_location == "sentinel 10.0.0.1:26379,10.0.0.2:26379/mymaster/2"
        for shown in (repr(settings), str(settings), settings.model_dump_json()):
            assert PASSWORD not in shown

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            (
                f"redis+sentinel://:{PASSWORD}@10.0.0.1:26379",
                "no service name: end the URL with /SERVICE_NAME or /SERVICE/DB",
            ),
            (
                "rediss+sentinel://:r3dis/pa55w0rd@h/m",
                "an @ follows the hosts (percent-encode / ? # @ & in passwords)",
            ),
            (
                f"redis+sentinel://h:1/m?sentinel_password={PASSWORD}&x",
                "the options are not name=value pairs joined by & "
                "(percent-encode / ? # @ & in passwords)",
            ),
        ],
    )
    def test_a_malformed_one_is_refused_saying_why_without_quoting_it(
        self, url: str, reason: str
    ) -> None:
        with pytest.raises(ValidationError) as refused:
            Settings(redis_url=url)
        [error] = refused.value.errors(include_input=False)
        assert (error["loc"], error["msg"]) == (
            ("redis_url",),
            f"not a valid Sentinel URL: {reason}",
        )
        for fragment in (PASSWORD, "r3dis", "pa55w0rd"):
            assert fragment not in str(refused.value)


class TestReplicas:
    def test_by_default_no_replica_is_waited_for(self) -> None:
        settings = Settings()
        assert (settings.redis_min_replicas, settings.redis_wait_timeout) == (0, None)
        assert settings.replica_wait == 2.5  # half of FLOWHOOKS_REDIS_TIMEOUT

    def test_the_wait_is_set_in_any_duration(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("FLOWHOOKS_REDIS_MIN_REPLICAS", "2")
        monkeypatch.setenv("FLOWHOOKS_REDIS_WAIT_TIMEOUT", "750ms")
        settings = Settings()
        assert (settings.redis_min_replicas, settings.replica_wait) == (2, 0.75)

    @pytest.mark.parametrize(
        ("values", "loc", "message"),
        [
            ({"REDIS_MIN_REPLICAS": "-1"}, ("redis_min_replicas",), None),
            ({"REDIS_MIN_REPLICAS": "one"}, ("redis_min_replicas",), None),
            ({"REDIS_WAIT_TIMEOUT": "0"}, ("redis_wait_timeout",), None),
            (
                {"REDIS_WAIT_TIMEOUT": "5s"},
                ("redis_wait_timeout",),
                "must be shorter than FLOWHOOKS_REDIS_TIMEOUT",
            ),
            (
                {"REDIS_WAIT_TIMEOUT": "2s", "REDIS_TIMEOUT": "1s"},
                ("redis_wait_timeout",),
                "must be shorter than FLOWHOOKS_REDIS_TIMEOUT",
            ),
        ],
    )
    def test_bad_values_are_refused(
        self,
        monkeypatch: pytest.MonkeyPatch,
        values: dict[str, str],
        loc: tuple[str, ...],
        message: str | None,
    ) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"FLOWHOOKS_{name}", value)
        with pytest.raises(ValidationError) as refused:
            Settings()
        [error] = refused.value.errors(include_input=False)
        assert error["loc"] == loc
        if message is not None:
            assert error["msg"] == message
