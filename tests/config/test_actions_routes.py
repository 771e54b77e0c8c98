"""The ``actions:`` and ``routes:`` of the config file: what loads, and every error by its exact
``file:line: key.path: message``, with no secret in any message or repr."""

import textwrap
from typing import Any

import jinja2
import pytest
from jinja2.exceptions import SecurityError

from config.loader import ConfigError
from config.schema import TEMPLATES, Config, Route
from config.templates import compile_template
from tests.support import make_config
from workers.routing import match

SLACK_URL = "https://hooks.slack.com/services/T0/B0/slack-secret-path-Qx7"
HOOK_URL = "https://hooks.example.com/in/hook-secret-path-Wz3"
PD_KEY = "pd-routing-key-secret-Lm4"
SMTP_PASSWORD = "smtp-pa55word-secret-Kp9"
HOOK_TOKEN = "Bearer hook-t0ken-secret-Rt2"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOT_A_URL = "not-a-url-secret-Vb8"
ENV = {
    "SLACK_URL": SLACK_URL,
    "HOOK_URL": HOOK_URL,
    "PD_KEY": PD_KEY,
    "SMTP_PASSWORD": SMTP_PASSWORD,
    "HOOK_TOKEN": HOOK_TOKEN,
    "WHSEC": WHSEC,
    "BAD_WHSEC": "whsec_!",
    "NOT_A_URL": NOT_A_URL,
}
SECRETS = (SLACK_URL, HOOK_URL, PD_KEY, SMTP_PASSWORD, HOOK_TOKEN, WHSEC, NOT_A_URL)
HEAD = "sources: {etl: {allow_unsigned: true}}\n"
SINKS = (
    "slack, pagerduty, email, webhook, log, teams, opsgenie, google_chat, apprise,"
    " etlworks_run, etlworks_retry, etlworks_schedule, etlworks_request"
)
LABELS = (
    "audit_id, consecutive_failures, entity_id, entity_url,"
    " error, event, flow_id, flow_name, id, kind, source,"
    " status, tags, webhook_id"
)
ROUTE_KEYS = (
    "actions, active_time_intervals, confirm, continue, group_by, group_interval, group_wait,"
    " matchers, mute_time_intervals, name, repeat_interval, resolve, routes"
)


def load(body: str) -> Config:
    return make_config(HEAD + textwrap.dedent(body).lstrip("\n"), ENV)


def errors(body: str) -> list[str]:
    """The loader's messages for ``HEAD + body``; ``body`` starts on line 2."""
    with pytest.raises(ConfigError) as caught:
        load(body)
    for secret in SECRETS:
        assert secret not in str(caught.value)
        assert secret.split()[-1] not in str(caught.value)
    return caught.value.errors


GOOD = """
actions:
  oncall:
    pagerduty: {routing_key: "${PD_KEY}", severity: critical}
    send_resolved: true
    retry: {initial: 30s, factor: 3, max_interval: 1h, jitter: 0, give_up_after: 2d}
  ops-slack:
    slack: {webhook_url: "${SLACK_URL}"}
    templates:
      title: "{{ event.flow_name }} failed"
      text: |
        Flow {{ event.flow_name }}
        {% if event.error %}Error: {{ event.error }}{% endif %}
  mail:
    email:
      to: [data@example.com, ops+alerts@example.co.uk]
      from: flowhooks@example.com
      smtp: {host: smtp.example.com, port: 465, tls: true, username: flowhooks,
             password: "${SMTP_PASSWORD}"}
    templates:
      subject: "[{{ event.kind }}] {{ event.flow_name }}"
      html: "<b>{{ event.error }}</b>"
    send_resolved: false
  hook:
    webhook:
      url: "${HOOK_URL}"
      headers: {Authorization: "${HOOK_TOKEN}", X-Team: data}
      sign: {secret: "${WHSEC}"}
      timeout: 5s
  eu:
    pagerduty: {routing_key: "${PD_KEY}", url: "https://events.eu.pagerduty.com/v2/enqueue"}
  dev: {log: {level: warning}}
time_intervals:
  nights: [{times: [{start_time: "22:00", end_time: "24:00"}]}]
  office: [{weekdays: ["monday:friday"]}]
routes:
  actions: [dev]
  group_by: [source, flow_id]
  routes:
    - matchers: ['source="prod"', 'kind=~"flow\\.(failed|timeout)"']
      actions: [oncall, ops-slack]
      resolve: true
      continue: true
      repeat_interval: 4h
      mute_time_intervals: [nights]
    - matchers: [tags="nightly", "flow_name !~ \\"staging-.*\\""]
      actions: [mail, hook]
      active_time_intervals: [office]
      group_by: ["..."]
      group_wait: 30s
      group_interval: 5m
      routes:
        - matchers: ['error=~"(?i).*timeout.*"']
          actions: [eu]
          continue: false
"""


class TestAGoodConfig:
    def test_actions(self) -> None:
        config = load(GOOD)
        assert {name: a.sink for name, a in config.actions.items()} == {
            "oncall": "pagerduty",
            "ops-slack": "slack",
            "mail": "email",
            "hook": "webhook",
            "eu": "pagerduty",
            "dev": "log",
        }
        oncall = config.actions["oncall"]
        assert oncall.pagerduty is not None
        assert oncall.pagerduty.routing_key.get_secret_value() == PD_KEY
        assert oncall.pagerduty.url == "https://events.pagerduty.com/v2/enqueue"
        assert oncall.pagerduty.severity == "critical"
        retry = oncall.retry
        assert (retry.initial, retry.factor, retry.max_interval, retry.jitter) == (30, 3, 3600, 0)
        assert retry.give_up_after == 2 * 86400
        slack = config.actions["ops-slack"]
        assert slack.slack is not None
        assert slack.slack.webhook_url.get_secret_value() == SLACK_URL
        assert slack.templates["text"] == (
            "Flow {{ event.flow_name }}\n{% if event.error %}Error: {{ event.error }}{% endif %}\n"
        )
        assert (slack.send_resolved, slack.retry.initial, slack.retry.give_up_after) == (
            True,
            10,
            86400,
        )
        mail = config.actions["mail"].email
        assert mail is not None
        assert (mail.to, mail.sender) == (
            ["data@example.com", "ops+alerts@example.co.uk"],
            "flowhooks@example.com",
        )
        assert (mail.smtp.port, mail.smtp.tls, mail.smtp.starttls, mail.smtp.username) == (
            465,
            True,
            False,
            "flowhooks",
        )
        assert not config.actions["mail"].send_resolved
        hook = config.actions["hook"].webhook
        assert hook is not None
        assert hook.url.get_secret_value() == HOOK_URL
        assert {k: v.get_secret_value() for k, v in hook.headers.items()} == {
            "Authorization": HOOK_TOKEN,
            "X-Team": "data",
        }
        assert hook.sign is not None
        assert hook.sign.secret.get_secret_value() == WHSEC
        assert hook.timeout == 5
        dev = config.actions["dev"].log
        assert dev is not None
        assert dev.level == "warning"

    def test_routes(self) -> None:
        routes = load(GOOD).routes
        assert (routes.actions, routes.group_by, routes.continue_) == (
            ["dev"],
            ["source", "flow_id"],
            False,
        )
        first, second = routes.routes
        assert [str(m) for m in first.matchers] == [
            'source="prod"',
            'kind=~"flow\\\\.(failed|timeout)"',
        ]
        assert first.continue_
        assert (first.resolve, first.repeat_interval, first.mute_time_intervals) == (
            True,
            4 * 3600,
            ["nights"],
        )
        assert [str(m) for m in second.matchers] == ['tags="nightly"', 'flow_name!~"staging-.*"']
        assert (second.group_by, second.group_wait, second.group_interval) == (["..."], 30, 300)
        assert second.active_time_intervals == ["office"]
        assert second.resolve is None
        [leaf] = second.routes
        assert not leaf.continue_
        assert leaf.matchers[0].matches({"error": "Read TIMEOUT after 30s"})

    def test_the_routing_tree_dumps_and_loads_back(self) -> None:
        routes = load(GOOD).routes
        dumped = routes.model_dump(mode="json", by_alias=True)
        assert dumped["routes"][0]["continue"] is True
        assert dumped["routes"][0]["matchers"][1] == 'kind=~"flow\\\\.(failed|timeout)"'
        assert Route.model_validate(dumped) == routes

    def test_secrets_never_show(self) -> None:
        config = load(GOOD)
        shown = [repr(config), str(config), config.model_dump_json(), str(config.model_dump())]
        shown += [repr(action) for action in config.actions.values()]
        for text in shown:
            for secret in SECRETS:
                assert secret not in text
                assert secret.split()[-1] not in text
        assert "**********" in repr(config.actions["hook"])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            """
            actions:
              a: {}
            """,
            [f"test.yaml:3: actions.a: must name exactly one of {SINKS}"],
            id="no sink",
        ),
        pytest.param(
            """
            actions:
              a: {send_resolved: false, retry: {initial: 5s}}
            """,
            [f"test.yaml:3: actions.a: must name exactly one of {SINKS}"],
            id="only shared settings",
        ),
        pytest.param(
            """
            actions:
              a:
                log: {}
                slack: {webhook_url: "${SLACK_URL}"}
            """,
            [f"test.yaml:3: actions.a: must name exactly one of {SINKS}"],
            id="two sinks",
        ),
        pytest.param(
            """
            actions:
              a: {lag: {}}
            """,
            [
                "test.yaml:3: actions.a.lag: unknown key (known: apprise, circuit, collapse, email,"
                " etlworks_request, etlworks_retry, etlworks_run, etlworks_schedule,"
                " google_chat, log, opsgenie, pagerduty, retry, send_resolved, slack, teams,"
                " templates, webhook)"
            ],
            id="unknown sink",
        ),
        pytest.param(
            """
            actions:
              a: {log: {level: debug}}
            """,
            ["test.yaml:3: actions.a.log.level: must be one of info, warning"],
            id="log level",
        ),
        pytest.param(
            """
            actions:
              a: {pagerduty: {routing_key: "${PD_KEY}", severity: high}}
            """,
            [
                "test.yaml:3: actions.a.pagerduty.severity:"
                " must be one of critical, error, warning, info"
            ],
            id="severity",
        ),
        pytest.param(
            """
            actions:
              a: {log: {}, send_resolved: sometimes}
            """,
            ["test.yaml:3: actions.a.send_resolved: must be true or false"],
            id="send_resolved",
        ),
        pytest.param(
            """
            actions:
              "on call": {log: {}}
            """,
            ["test.yaml:3: actions.on call: invalid name (letters, digits, _ . - only)"],
            id="name",
        ),
        pytest.param(
            """
            actions: [a, b]
            """,
            ["test.yaml:2: actions: must be a mapping"],
            id="a list",
        ),
    ],
)
def test_an_action_names_exactly_one_sink(body: str, expected: list[str]) -> None:
    assert errors(body) == expected


SINK_CONFIG = {
    "slack": '{webhook_url: "${SLACK_URL}"}',
    "pagerduty": '{routing_key: "${PD_KEY}"}',
    "email": "{to: [a@example.com], from: b@example.com, smtp: {host: localhost}}",
    "webhook": '{url: "${HOOK_URL}"}',
    "log": "{}",
    "teams": '{webhook_url: "${SLACK_URL}"}',
    "opsgenie": '{api_key: "${PD_KEY}"}',
    "google_chat": '{webhook_url: "${SLACK_URL}"}',
    "apprise": '{url: "${SLACK_URL}"}',
}


class TestTemplates:
    @pytest.mark.parametrize(
        ("sink", "name", "known"),
        [
            ("slack", "titel", "title, text"),
            ("slack", "subject", "title, text"),
            ("pagerduty", "title", "summary, dedup_key"),
            ("email", "body", "subject, text, html"),
            ("webhook", "text", "body"),
            ("log", "title", "text"),
        ],
    )
    def test_an_unknown_template_name_lists_the_known_ones(
        self, sink: str, name: str, known: str
    ) -> None:
        body = f"""
        actions:
          a:
            {sink}: {SINK_CONFIG[sink]}
            templates:
              {name}: "x"
        """
        assert errors(body) == [
            f"test.yaml:5: actions.a.templates: {sink} has no template {name!r} (known: {known})"
        ]

    @pytest.mark.parametrize("sink", sorted(TEMPLATES))
    def test_every_known_template_may_be_overridden(self, sink: str) -> None:
        templates = ", ".join(f'{name}: "{{{{ event.id }}}} {name}"' for name in TEMPLATES[sink])
        config = load(
            f"""
            actions:
              a: {{{sink}: {SINK_CONFIG[sink]}, templates: {{{templates}}}}}
            """
        )
        assert list(config.actions["a"].templates) == list(TEMPLATES[sink])

    @pytest.mark.parametrize(
        ("template", "message"),
        [
            (
                '"{{ event.flow_name "',
                "line 1: unexpected end of template, expected 'end of print statement'.",
            ),
            ('"{{ event.flow_name | shout }}"', "line 1: No filter named 'shout'."),
            ('"{% iff x %}{% endif %}"', "line 1: Encountered unknown tag 'iff'."),
            (
                "|\n        one\n        two {{ x\n        three",
                "line 3: expected token 'end of print statement', got 'three'",
            ),
            (
                "|\n        {% for x in y %}\n        {{ x }}",
                "line 2: Unexpected end of template. Jinja was looking for the following tags:"
                " 'endfor' or 'else'. The innermost block that needs to be closed is 'for'.",
            ),
        ],
    )
    def test_a_template_that_does_not_compile_names_its_line(
        self, template: str, message: str
    ) -> None:
        """The file's line is the template's key; the message gives the line in the template."""
        body = f"actions:\n  a:\n    log: {{}}\n    templates:\n      text: {template}\n"
        assert errors(body) == [
            f"test.yaml:6: actions.a.templates.text: template does not compile: {message}"
        ]

    def test_html_templates_are_compiled_too(self) -> None:
        body = """
        actions:
          a:
            email: {to: [a@example.com], from: b@example.com, smtp: {host: localhost}}
            templates:
              subject: "ok"
              html: "<p>{% if event.error %}</p>"
        """
        assert errors(body) == [
            "test.yaml:7: actions.a.templates.html: template does not compile: line 1:"
            " Unexpected end of template. Jinja was looking for the following tags: 'elif' or"
            " 'else' or 'endif'. The innermost block that needs to be closed is 'if'."
        ]

    def test_an_unknown_name_and_a_broken_template_are_reported_one_at_a_time(self) -> None:
        body = """
        actions:
          a:
            log: {}
            templates: {titel: "{{ x ", text: "{% endif %}"}
        """
        assert errors(body) == [
            "test.yaml:5: actions.a.templates.text: template does not compile: line 1:"
            " Encountered unknown tag 'endif'.",
            "test.yaml:5: actions.a.templates.titel: template does not compile: line 1:"
            " unexpected end of template, expected 'end of print statement'.",
        ]
        body = body.replace('"{{ x "', '"{{ x }}"').replace("{% endif %}", "ok")
        assert errors(body) == [
            "test.yaml:5: actions.a.templates: log has no template 'titel' (known: text)"
        ]

    def test_an_undefined_name_is_no_load_error_but_fails_when_rendered(self) -> None:
        config = load(
            """
            actions:
              a: {log: {}, templates: {text: "{{ missing.name }} {{ event.nope }}"}}
            """
        )
        template = compile_template(config.actions["a"].templates["text"])
        with pytest.raises(jinja2.UndefinedError, match=r"^'missing' is undefined$"):
            template.render(event={})

    def test_the_sandbox_is_no_load_error_but_refuses_when_rendered(self) -> None:
        source = "{{ event.__class__.__mro__[1].__subclasses__() }}"
        load(f"actions:\n  a: {{log: {{}}, templates: {{text: '{source}'}}}}\n")
        with pytest.raises(SecurityError):
            compile_template(source).render(event="x")

    def test_html_templates_escape_and_text_templates_do_not(self) -> None:
        assert compile_template("{{ x }}", html=True).render(x="<b>") == "&lt;b&gt;"
        assert compile_template("{{ x }}").render(x="<b>") == "<b>"

    def test_a_template_must_be_text(self) -> None:
        assert errors("actions:\n  a: {log: {}, templates: {text: 5}}\n") == [
            "test.yaml:3: actions.a.templates.text: must be a string"
        ]
        assert errors("actions:\n  a: {log: {}, templates: [text]}\n") == [
            "test.yaml:3: actions.a.templates: must be a mapping"
        ]


EMAIL = "a:\n    email: {{to: {to}, from: {sender}, smtp: {smtp}}}"


def email_errors(
    to: str = "[a@example.com]", sender: str = "b@example.com", smtp: str = "{host: localhost}"
) -> list[str]:
    found = errors("actions:\n  " + EMAIL.format(to=to, sender=sender, smtp=smtp) + "\n")
    return [e.removeprefix("test.yaml:4: actions.a.email.") for e in found]


class TestEmail:
    @pytest.mark.parametrize(
        ("address", "shown"),
        [
            ('"a b@example.com"', "'a b@example.com'"),
            ('"Ops <ops@example.com>"', "'Ops <ops@example.com>'"),
            ("ops", "'ops'"),
            ("a@b@example.com", "'a@b@example.com'"),
            ('"@example.com"', "'@example.com'"),
            ('"ops@"', "'ops@'"),
            ('"ops@example.com, cfo@example.com"', "'ops@example.com, cfo@example.com'"),
            (
                '"ops@example.com\\r\\nBcc: all@example.com"',
                "'ops@example.com\\r\\nBcc: all@example.com'",
            ),
            (
                '"ops@example.com\\nBcc: all@example.com"',
                "'ops@example.com\\nBcc: all@example.com'",
            ),
            ('"ops\\u0000@example.com"', "'ops\\x00@example.com'"),
            ('"ops@exa\\u007fmple.com"', "'ops@exa\\x7fmple.com'"),
            ('""', "''"),
        ],
    )
    def test_addresses_are_checked(self, address: str, shown: str) -> None:
        assert email_errors(to=f"[a@example.com, {address}]") == [
            f"to[1]: {shown} is not an email address"
        ]
        assert email_errors(sender=address) == [f"from: {shown} is not an email address"]

    @pytest.mark.parametrize(
        "address", ["ops@example.com", "ops+alerts@example.co.uk", "o.p-s_1@localhost", "ö@ä.de"]
    )
    def test_plain_addresses_are_accepted(self, address: str) -> None:
        text = "actions:\n  " + EMAIL.format(to=f"[{address}]", sender=address, smtp="{host: h}")
        mail = load(text + "\n").actions["a"].email
        assert mail is not None
        assert (mail.to, mail.sender) == ([address], address)

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"to": "[]"}, ["to: must not be empty"]),
            ({"to": "a@example.com"}, ["to: must be a list"]),
            (
                {"smtp": "{host: h, starttls: true, tls: true}"},
                ["smtp: starttls and tls exclude each other: choose one"],
            ),
            ({"smtp": "{host: h, username: u}"}, ["smtp: username and password go together"]),
            (
                {"smtp": '{host: h, password: "${SMTP_PASSWORD}"}'},
                ["smtp: username and password go together"],
            ),
            (
                {"smtp": '{host: h, username: "", password: "${SMTP_PASSWORD}"}'},
                ["smtp.username: must not be empty"],
            ),
            (
                {"smtp": "{host: h, username: u, password: hunter2}"},
                [
                    'smtp.password: must be a secret reference: "${VAR}" or {file: PATH},'
                    " not a literal value"
                ],
            ),
            (
                {"smtp": '{host: h, username: u, password: "${NOPE}"}'},
                ["smtp.password: environment variable NOPE is not set"],
            ),
            ({"smtp": '{host: ""}'}, ["smtp.host: must not be empty"]),
            ({"smtp": "{port: 25}"}, ["smtp.host: required"]),
            ({"smtp": "{host: h, port: 0}"}, ["smtp.port: must be a port number from 1 to 65535"]),
            (
                {"smtp": "{host: h, port: 65536}"},
                ["smtp.port: must be a port number from 1 to 65535"],
            ),
            ({"smtp": "{host: h, port: smtp}"}, ["smtp.port: must be a whole number"]),
            (
                {"smtp": "{host: h, ssl: true}"},
                [
                    "smtp.ssl: unknown key (known: host, password, port, starttls, timeout, tls,"
                    " username)"
                ],
            ),
            (
                {"smtp": "{host: h, timeout: forever}"},
                ["smtp.timeout: must be a duration such as 30s, 5m, 2h or 7d"],
            ),
        ],
    )
    def test_fields(self, fields: dict[str, str], expected: list[str]) -> None:
        assert email_errors(**fields) == expected

    def test_from_is_required(self) -> None:
        assert errors("actions:\n  a: {email: {to: [a@example.com], smtp: {host: h}}}\n") == [
            "test.yaml:3: actions.a.email.from: required"
        ]


class TestRetry:
    @pytest.mark.parametrize(
        ("retry", "expected"),
        [
            ("{initial: 0}", ["retry.initial: must be longer than zero"]),
            ("{initial: -1s}", ["retry.initial: must be a duration such as 30s, 5m, 2h or 7d"]),
            ("{initial: -1}", ["retry.initial: must not be negative"]),
            ("{factor: 0.5}", ["retry.factor: must be a number of at least 1"]),
            ("{factor: .inf}", ["retry.factor: must be a number of at least 1"]),
            ("{factor: .nan}", ["retry.factor: must be a number of at least 1"]),
            ('{factor: "2"}', ["retry.factor: must be a number"]),
            ("{factor: true}", ["retry.factor: must be a number"]),
            ("{jitter: -0.1}", ["retry.jitter: must be a number from 0 to 1"]),
            ("{jitter: 1.5}", ["retry.jitter: must be a number from 0 to 1"]),
            ("{jitter: .nan}", ["retry.jitter: must be a number from 0 to 1"]),
            ("{give_up_after: -1}", ["retry.give_up_after: must not be negative"]),
            (
                "{initial: 1m, max_interval: 30s}",
                ["retry: max_interval must not be shorter than initial"],
            ),
            ("{initial: 2h}", ["retry: max_interval must not be shorter than initial"]),
            (
                "{backoff: 2}",
                [
                    "retry.backoff: unknown key (known: factor, give_up_after, initial, jitter,"
                    " max_interval)"
                ],
            ),
            (
                "{initial: 0, factor: 0, jitter: 2}",
                [
                    "retry.factor: must be a number of at least 1",
                    "retry.initial: must be longer than zero",
                    "retry.jitter: must be a number from 0 to 1",
                ],
            ),
        ],
    )
    def test_bounds(self, retry: str, expected: list[str]) -> None:
        found = errors(f"actions:\n  a: {{log: {{}}, retry: {retry}}}\n")
        assert found == [f"test.yaml:3: actions.a.{message}" for message in expected]

    @pytest.mark.parametrize(
        ("retry", "expected"),
        [
            ("{}", (10, 2, 3600, 0.2, 86400)),
            (
                "{initial: 1, factor: 1, jitter: 0, max_interval: 1, give_up_after: 0}",
                (1, 1, 1, 0, 0),
            ),
            (
                "{initial: 1h, max_interval: 1h, jitter: 1, give_up_after: 7d}",
                (3600, 2, 3600, 1, 604800),
            ),
        ],
    )
    def test_the_edges_are_accepted(
        self, retry: str, expected: tuple[float, float, float, float, float]
    ) -> None:
        policy = load(f"actions:\n  a: {{log: {{}}, retry: {retry}}}\n").actions["a"].retry
        found = (policy.initial, policy.factor, policy.max_interval, policy.jitter)
        assert (*found, policy.give_up_after) == expected


class TestUrlsAndHeaders:
    @pytest.mark.parametrize(
        ("sink", "field"),
        [("slack", "webhook_url"), ("webhook", "url"), ("pagerduty", "url")],
    )
    @pytest.mark.parametrize(
        "url",
        [
            NOT_A_URL,
            "ftp://hooks.example.com/secret-Vb8",
            "https:///no-host-secret-Vb8",
            "https://hooks.example.com/a secret-Vb8",
            "https://hooks.example.com:99999/secret-Vb8",
            "https://[::1/secret-Vb8",
            "hooks.example.com/secret-Vb8",
        ],
    )
    def test_a_url_must_be_http_and_is_never_quoted(self, sink: str, field: str, url: str) -> None:
        fields = {
            "slack": "{webhook_url: '${URL}'}",
            "webhook": "{url: '${URL}'}",
            "pagerduty": "{routing_key: '${PD_KEY}', url: '${URL}'}",
        }[sink]
        if sink == "pagerduty":  # not a secret: written in the file
            fields = fields.replace("'${URL}'", repr(url))
        with pytest.raises(ConfigError) as caught:
            make_config(HEAD + f"actions:\n  a: {{{sink}: {fields}}}\n", {**ENV, "URL": url})
        assert caught.value.errors == [
            f"test.yaml:3: actions.a.{sink}: {field} must be an http:// or https:// URL"
        ]
        assert "secret-Vb8" not in str(caught.value)

    @pytest.mark.parametrize(
        ("sink", "fields", "message"),
        [
            (
                "slack",
                f"{{webhook_url: {SLACK_URL}}}",
                'slack.webhook_url: must be a secret reference: "${VAR}" or {file: PATH},'
                " not a literal value",
            ),
            (
                "webhook",
                f"{{url: {HOOK_URL}}}",
                'webhook.url: must be a secret reference: "${VAR}" or {file: PATH},'
                " not a literal value",
            ),
            (
                "pagerduty",
                f"{{routing_key: {PD_KEY}}}",
                'pagerduty.routing_key: must be a secret reference: "${VAR}" or {file: PATH},'
                " not a literal value",
            ),
            (
                "slack",
                '{webhook_url: "${NOPE}"}',
                "slack.webhook_url: environment variable NOPE is not set",
            ),
            (
                "webhook",
                '{url: "${HOOK_URL}", sign: {secret: "${NOPE}"}}',
                "webhook.sign.secret: environment variable NOPE is not set",
            ),
            ("slack", "{}", "slack.webhook_url: required"),
            ("pagerduty", "{}", "pagerduty.routing_key: required"),
        ],
    )
    def test_secrets_are_references(self, sink: str, fields: str, message: str) -> None:
        assert errors(f"actions:\n  a: {{{sink}: {fields}}}\n") == [
            f"test.yaml:3: actions.a.{message}"
        ]

    @pytest.mark.parametrize(
        ("headers", "message"),
        [
            (
                '{"X Team": data}',
                "headers: 'X Team' is not an HTTP header name"
                " (letters, digits and !#$%&'*+.^_`|~-)",
            ),
            (
                '{"X-Team:": data}',
                "headers: 'X-Team:' is not an HTTP header name"
                " (letters, digits and !#$%&'*+.^_`|~-)",
            ),
            (
                '{"": data}',
                "headers: '' is not an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)",
            ),
            (
                '{"X-Tëam": data}',
                "headers: 'X-Tëam' is not an HTTP header name"
                " (letters, digits and !#$%&'*+.^_`|~-)",
            ),
            (
                "{X-Team: a, x-team: b}",
                "headers: 'x-team' is named twice (header names ignore case)",
            ),
            ('{X-Team: "a\\r\\nX-Evil: 1"}', "headers.X-Team: must be printable ASCII on one line"),
            ('{X-Team: "caf\\u00e9"}', "headers.X-Team: must be printable ASCII on one line"),
            ('{X-Team: "\\u0000"}', "headers.X-Team: must be printable ASCII on one line"),
            ('{X-Team: "${NOPE}"}', "headers.X-Team: environment variable NOPE is not set"),
            ("{X-Team: 5}", 'headers.X-Team: must be a secret reference: "${VAR}" or {file: PATH}'),
            ("[X-Team]", "headers: must be a mapping"),
        ],
    )
    def test_webhook_headers(self, headers: str, message: str) -> None:
        found = errors(
            f'actions:\n  a: {{webhook: {{url: "${{HOOK_URL}}", headers: {headers}}}}}\n'
        )
        assert found == [f"test.yaml:3: actions.a.webhook.{message}"]

    def test_a_header_value_from_the_environment_must_be_sendable_and_is_never_quoted(
        self,
    ) -> None:
        body = (
            'actions:\n  a: {webhook: {url: "${HOOK_URL}", headers: {Authorization: "${BAD}"}}}\n'
        )
        with pytest.raises(ConfigError) as caught:
            make_config(HEAD + body, {**ENV, "BAD": "Bearer t0ken-Zq1\r\nX-Evil: 1"})
        assert caught.value.errors == [
            "test.yaml:3: actions.a.webhook.headers.Authorization:"
            " must be printable ASCII on one line"
        ]
        assert "t0ken-Zq1" not in str(caught.value)

    def test_header_values_may_be_plain_text_and_are_held_as_secrets(self) -> None:
        config = load(
            'actions:\n  a: {webhook: {url: "${HOOK_URL}", headers: {X-Team: "data team"}}}\n'
        )
        hook = config.actions["a"].webhook
        assert hook is not None
        assert hook.headers["X-Team"].get_secret_value() == "data team"
        assert "data team" not in repr(hook)


def test_no_error_about_another_key_shows_a_resolved_secret() -> None:
    body = """
    actions:
      a: {slack: {webhook_url: "${SLACK_URL}", channel: x}}
      b: {pagerduty: {routing_key: "${PD_KEY}", severity: "${PD_KEY}"}}
      c: {webhook: {url: "${HOOK_URL}", headers: {"${HOOK_TOKEN}": x}}}
      d:
        email: {to: ["${SMTP_PASSWORD}"], from: a@b.c,
                smtp: {host: h, username: u, password: "${SMTP_PASSWORD}",
                       tls: true, starttls: true}}
    """
    found = errors(body)  # errors() asserts that no secret shows
    assert found == [
        "test.yaml:3: actions.a.slack.channel: unknown key (known: webhook_url)",
        "test.yaml:4: actions.b.pagerduty.severity: must be one of critical, error, warning, info",
        "test.yaml:5: actions.c.webhook.headers: '${HOOK_TOKEN}' is not an HTTP header name"
        " (letters, digits and !#$%&'*+.^_`|~-)",
        "test.yaml:7: actions.d.email.to[0]: '${SMTP_PASSWORD}' is not an email address",
        "test.yaml:8: actions.d.email.smtp: starttls and tls exclude each other: choose one",
    ]


ACTIONS = """
actions:
  oncall: {log: {}}
  ops-slack: {log: {}}
time_intervals:
  nights: [{times: [{start_time: "22:00", end_time: "24:00"}]}]
  office: [{weekdays: ["monday:friday"]}]
"""


def route_errors(routes: str) -> list[str]:
    """Errors for ``ACTIONS`` and then ``routes``, whose first line is line 8."""
    return errors(ACTIONS + textwrap.dedent(routes).lstrip("\n"))


class TestRoutes:
    def test_unknown_names_are_all_reported_with_their_paths_and_lines(self) -> None:
        found = route_errors(
            """
            routes:
              actions: [oncall, pagerdty]
              mute_time_intervals: [night]
              routes:
                - matchers: ['kind="flow.failed"']
                  actions: [ops-slack]
                - matchers: ['kind="flow.warning"']
                  active_time_intervals: [office, weekends]
                  routes:
                    - actions: [oncall, Oncall]
                      mute_time_intervals: [nights, nite]
            """
        )
        assert found == [
            "test.yaml:9: routes.actions[1]: unknown action 'pagerdty' (known: oncall, ops-slack)",
            "test.yaml:10: routes.mute_time_intervals[0]:"
            " unknown time interval 'night' (known: nights, office)",
            "test.yaml:15: routes.routes[1].active_time_intervals[1]:"
            " unknown time interval 'weekends' (known: nights, office)",
            "test.yaml:17: routes.routes[1].routes[0].actions[1]:"
            " unknown action 'Oncall' (known: oncall, ops-slack)",
            "test.yaml:18: routes.routes[1].routes[0].mute_time_intervals[1]:"
            " unknown time interval 'nite' (known: nights, office)",
        ]

    def test_with_nothing_defined(self) -> None:
        assert errors(
            """
            routes:
              actions: [oncall]
              routes:
                - active_time_intervals: [office]
            """
        ) == [
            "test.yaml:3: routes.actions[0]: unknown action 'oncall' (known: none defined)",
            "test.yaml:5: routes.routes[0].active_time_intervals[0]:"
            " unknown time interval 'office' (known: none defined)",
        ]

    def test_references_are_checked_only_once_the_structure_is_valid(self) -> None:
        """Current behaviour: unknown names are looked up in a config that validated, so they
        show only after every structural error is fixed (a second round for the operator)."""
        routes = """
            routes:
              actions: [pagerdty]
              routes:
                - matchers: ['flowname="x"']
                  mute_time_intervals: [nite]
            """
        assert route_errors(routes) == [
            "test.yaml:11: routes.routes[0].matchers[0]:"
            f" unknown label 'flowname' (known: {LABELS})"
        ]
        assert route_errors(routes.replace("flowname", "flow_name")) == [
            "test.yaml:9: routes.actions[0]: unknown action 'pagerdty' (known: oncall, ops-slack)",
            "test.yaml:12: routes.routes[0].mute_time_intervals[0]:"
            " unknown time interval 'nite' (known: nights, office)",
        ]

    def test_a_structural_error_in_actions_also_hides_the_references(self) -> None:
        body = ACTIONS.replace("ops-slack: {log: {}}", "ops-slack: {log: {}, slack: {}}")
        assert errors(body + "routes: {actions: [pagerdty]}\n") == [
            "test.yaml:4: actions.ops-slack.slack.webhook_url: required"
        ]

    @pytest.mark.parametrize(
        ("matchers", "expected"),
        [
            (
                ["'kind=\"flow.failed\"'", "'flowname=\"x\"'"],
                [
                    "test.yaml:13: routes.routes[1].matchers[1]:"
                    f" unknown label 'flowname' (known: {LABELS})"
                ],
            ),
            (
                ["'flow_name=~\"(\"'"],
                [
                    "test.yaml:12: routes.routes[1].matchers[0]:"
                    " bad regex '(': missing ), unterminated subpattern at position 0"
                ],
            ),
            (
                ["'kind'"],
                [
                    "test.yaml:12: routes.routes[1].matchers[0]:"
                    """ 'kind' is not a matcher: write label="value", !=, =~ or !~"""
                ],
            ),
            (
                ["'kind=\"flow.failed'"],
                [
                    "test.yaml:12: routes.routes[1].matchers[0]:"
                    """ bad quoting in '"flow.failed': the closing " is missing"""
                ],
            ),
            (
                ["'kind=\"flow_failed\"'"],
                [
                    "test.yaml:12: routes.routes[1].matchers[0]: unknown kind 'flow_failed'"
                    " (known: expectation.missed, flow.canceled, flow.failed, flow.running,"
                    " flow.succeeded, flow.timeout, flow.warning, join.expired, other,"
                    " resource.changed, webhook.missing, webhook.resumed);"
                    " did you mean 'flow.failed'?"
                ],
            ),
            (
                ["'status=~\"fail.*\"'"],
                [
                    "test.yaml:12: routes.routes[1].matchers[0]: the regex 'fail.*' matches no"
                    " status (known: canceled, error, queued, running, success, warning)"
                ],
            ),
            (
                ["'event==\"FLOW_FAILED\"'"],
                [
                    "test.yaml:12: routes.routes[1].matchers[0]:"
                    " unknown operator '=='; use =, !=, =~ or !~"
                ],
            ),
            (
                ["5", "{kind: x}"],
                [
                    "test.yaml:12: routes.routes[1].matchers[0]:"
                    ' must be a matcher string such as kind="flow.failed"',
                    "test.yaml:13: routes.routes[1].matchers[1]:"
                    ' must be a matcher string such as kind="flow.failed"',
                ],
            ),
        ],
    )
    def test_bad_matchers_at_their_key_path(self, matchers: list[str], expected: list[str]) -> None:
        listed = "".join(f"\n        - {m}" for m in matchers)
        routes = f"""
routes:
  routes:
    - matchers: ['kind="flow.succeeded"']
    - matchers:{listed}
"""
        assert route_errors(routes) == expected

    def test_matchers_must_be_a_list(self) -> None:
        assert route_errors("routes:\n  routes:\n    - matchers: 'kind=\"x\"'\n") == [
            "test.yaml:10: routes.routes[0].matchers: must be a list"
        ]

    def test_errors_deep_in_the_tree_name_their_path_and_line(self) -> None:
        found = route_errors(
            """
            routes:
              routes:
                - matchers: ['source="prod"']
                  routes:
                    - matchers: ['kind="flow.failed"']
                    - matchers: ['kind="flow.warning"']
                      routes:
                        - matchers: ['flow_name=~"warehouse-.*"']
                          group_wait: soon
                        - matchers: ['flow_name=~"[a-"']
                          repeat_interval: -1
                          resolve: maybe
            """
        )
        assert found == [
            "test.yaml:16: routes.routes[0].routes[1].routes[0].group_wait:"
            " must be a duration such as 30s, 5m, 2h or 7d",
            "test.yaml:17: routes.routes[0].routes[1].routes[1].matchers[0]:"
            " bad regex '[a-': unterminated character set at position 0",
            "test.yaml:18: routes.routes[0].routes[1].routes[1].repeat_interval:"
            " must not be negative",
            "test.yaml:19: routes.routes[0].routes[1].routes[1].resolve: must be true or false",
        ]

    @pytest.mark.parametrize(
        ("group_by", "message"),
        [
            ("[flowname]", f"unknown label 'flowname' (known: {LABELS})"),
            ("[flow_id, Flow_Name]", f"unknown label 'Flow_Name' (known: {LABELS})"),
            ('["...", flow_id]', "... groups by every label: list it alone"),
            ("[flow_id, source, flow_id]", "'flow_id' is listed twice"),
            ("flow_id", "must be a list"),
        ],
    )
    def test_group_by(self, group_by: str, message: str) -> None:
        assert route_errors(f"routes:\n  routes:\n    - group_by: {group_by}\n") == [
            f"test.yaml:10: routes.routes[0].group_by: {message}"
        ]

    def test_group_by_accepts_labels_tags_and_everything(self) -> None:
        config = load(
            ACTIONS
            + "routes:\n  group_by: [flow_id, tags]\n  routes:\n    - group_by: ['...']\n"
            + "    - group_by: []\n"
        )
        assert config.routes.group_by == ["flow_id", "tags"]
        assert [r.group_by for r in config.routes.routes] == [["..."], []]

    @pytest.mark.parametrize(
        ("routes", "expected"),
        [
            ("{continue: true}", True),
            ("{continue: false}", False),
            ("{}", False),
        ],
    )
    def test_continue_is_written_continue(self, routes: str, expected: bool) -> None:
        config = load(ACTIONS + f"routes:\n  routes:\n    - {routes}\n")
        assert config.routes.routes[0].continue_ is expected

    def test_continue_must_be_a_boolean(self) -> None:
        assert route_errors("routes:\n  routes:\n    - continue: always\n") == [
            "test.yaml:10: routes.routes[0].continue: must be true or false"
        ]

    def test_pythons_name_for_continue_is_no_key(self) -> None:
        [found] = route_errors("routes:\n  routes:\n    - continue_: true\n")
        assert found.startswith("test.yaml:10: routes.routes[0].continue_: unknown key (known: ")

    def test_unknown_route_keys_list_continue_as_written(self) -> None:
        assert route_errors("routes:\n  routes:\n    - continu: true\n") == [
            f"test.yaml:10: routes.routes[0].continu: unknown key (known: {ROUTE_KEYS})"
        ]

    @pytest.mark.parametrize(
        ("routes", "message"),
        [
            (
                "{matchers: ['kind=\"flow.failed\"'], actions: [oncall]}",
                "the root route matches every event: it takes no matchers",
            ),
            ("{continue: true}", "the root route has no sibling to continue to"),
        ],
    )
    def test_the_root_takes_no_matchers_and_no_continue(self, routes: str, message: str) -> None:
        assert route_errors(f"routes: {routes}\n") == [f"test.yaml:8: routes: {message}"]

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("actions", "oncall", "must be a list"),
            ("actions", "[5]", "must be a string"),
            ("mute_time_intervals", "nights", "must be a list"),
            ("routes", "{matchers: []}", "must be a list"),
            ("routes", "[oncall]", "must be a mapping"),
            ("group_interval", "[]", "must be a duration such as 30s, 5m, 2h or 7d"),
        ],
    )
    def test_types(self, field: str, value: str, message: str) -> None:
        found = route_errors(f"routes:\n  routes:\n    - {field}: {value}\n")
        [first] = found
        suffix = "[0]" if value in {"[5]", "[oncall]"} else ""
        assert first == f"test.yaml:10: routes.routes[0].{field}{suffix}: {message}"

    def test_an_empty_actions_list_is_explicit(self) -> None:
        config = load(ACTIONS + "routes:\n  actions: [oncall]\n  routes:\n    - actions: []\n")
        assert config.routes.routes[0].actions == []
        assert load(ACTIONS).routes == Route.model_validate({})


def test_the_route_model_dumps_matchers_as_they_are_written() -> None:
    route = Route.model_validate({"matchers": ['flow_name =~ "a|b"', 'error="x\\"y"']})
    dumped: dict[str, Any] = route.model_dump(mode="json", by_alias=True)
    assert dumped["matchers"] == ['flow_name=~"a|b"', 'error="x\\"y"']
    assert Route.model_validate(dumped) == route


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "actions:\n  a:\n    webhook: {url: '${HOOK_URL}', sign: {secret: '${BAD_WHSEC}'}}\n",
            "test.yaml:4: actions.a.webhook.sign.secret: the secret must be base64, optionally"
            " after whsec_",
        ),
        (
            "actions:\n  a:\n    webhook: {url: '${HOOK_URL}', timeout: 0}\n",
            "test.yaml:4: actions.a.webhook.timeout: must be longer than zero",
        ),
        (
            "actions:\n  a:\n    email:\n      to: [a@example.com]\n      from: b@example.com\n"
            "      smtp: {host: smtp.example.com, timeout: 0s}\n",
            "test.yaml:7: actions.a.email.smtp.timeout: must be longer than zero",
        ),
    ],
)
def test_settings_a_sink_cannot_work_with_are_refused_at_load(body: str, expected: str) -> None:
    assert errors(body) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            """
            actions:
              a: {pagerduty: {routing_key: "${PD_KEY}"}, collapse: {after: 3}}
            """,
            [
                "test.yaml:3: actions.a: collapse: pagerduty actions do not collapse (only "
                "apprise, email, google_chat, slack, teams)"
            ],
            id="collapse of a sink that has none",
        ),
        pytest.param(
            """
            actions:
              a: {slack: {webhook_url: "${SLACK_URL}"}, collapse: {after: 0}}
            """,
            ["test.yaml:3: actions.a.collapse.after: input should be greater than or equal to 1"],
            id="collapse after zero",
        ),
        pytest.param(
            """
            actions:
              a:
                slack: {webhook_url: "${SLACK_URL}"}
                circuit: {cool_down: 10m, max_cool_down: 1m}
            """,
            ["test.yaml:5: actions.a.circuit: max_cool_down must not be shorter than cool_down"],
            id="cool-down longer than its cap",
        ),
    ],
)
def test_collapse_and_circuit_errors_point_at_the_key(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


def test_collapse_and_circuit_defaults() -> None:
    config = load(
        """
        actions:
          chat: {slack: {webhook_url: "${SLACK_URL}"}}
          quiet: {slack: {webhook_url: "${SLACK_URL}"}, collapse: false}
          mail: {email: {to: [a@example.com], from: b@example.com, smtp: {host: h}},
                 collapse: {after: 2}}
          pager: {pagerduty: {routing_key: "${PD_KEY}"}}
        """
    )
    actions = config.actions
    assert actions["chat"].collapse_after == 5
    assert actions["quiet"].collapse_after is None
    assert actions["mail"].collapse_after == 2
    assert actions["pager"].collapse_after is None
    assert (actions["pager"].circuit.after, actions["pager"].circuit.cool_down) == (5, 30.0)


class TestRouteNames:
    def test_a_name_used_twice_is_refused_where_it_is_repeated(self) -> None:
        found = route_errors(
            """
            routes:
              routes:
                - name: warehouse
                - routes:
                    - name: warehouse
            """
        )
        assert found == [
            "test.yaml:12: routes.routes[1].routes[0].name: 'warehouse' names"
            " routes.routes[0] already"
        ]

    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("routes", "'routes' is the root route's path: choose another name"),
            (
                "'a.b'",
                "must be letters, digits, _ and - (at most 64), starting with one of the first two",
            ),
            (
                "'routes.routes[0]'",
                "must be letters, digits, _ and - (at most 64), starting with one of the first two",
            ),
        ],
    )
    def test_a_name_that_could_be_taken_for_a_path_is_refused(
        self, name: str, message: str
    ) -> None:
        found = route_errors(f"routes:\n  routes:\n    - name: {name}\n")
        assert found == [f"test.yaml:10: routes.routes[0].name: {message}"]

    def test_a_named_route_is_matched_by_its_name(self) -> None:
        config = load(ACTIONS + "routes:\n  routes:\n    - {name: marts, actions: [oncall]}\n")
        [found] = match(config.routes, {"kind": "flow.failed"})
        assert (found.path, found.location) == ("marts", "routes.routes[0]")
