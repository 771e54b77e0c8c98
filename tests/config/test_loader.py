"""The config loader: what it accepts, and every error asserted by its exact message."""

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import config
from config.loader import ConfigError, load, parse
from config.schema import Config
from config.secrets import Unresolved
from flowhooks.cli import main

SECRET = "hmac-s3cr3t-that-must-never-print"
PASSWORD = "pa55w0rd-that-must-never-print"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENV = {"SECRET": SECRET, "PASSWORD": PASSWORD, "WHSEC": WHSEC, "EMPTY": ""}
NOT_BASE64 = "not*base64!-that-must-never-print"

GOOD = """\
sources:
  prod:
    verify:
      - hmac: {secrets: ["${SECRET}"]}
      - basic: {username: etlworks, password: "${PASSWORD}"}
  swh:
    verify:
      - standard_webhooks: {secrets: ["${WHSEC}"]}
  open:
    allow_unsigned: true
"""

TOP_LEVEL = "actions, etlworks, expect, inhibit_rules, joins, routes, sources, time_intervals"


def yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def errors(
    text: str, environ: dict[str, str] = ENV, base_dir: Path = Path("/nonexistent")
) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(yaml(text), "flowhooks.yaml", environ, base_dir)
    assert str(caught.value) == "\n".join(caught.value.errors)
    for secret in (SECRET, PASSWORD, WHSEC, NOT_BASE64):
        assert secret not in str(caught.value)
    return caught.value.errors


def test_a_good_config_loads() -> None:
    loaded = parse(GOOD, "flowhooks.yaml", ENV, Path("."))
    assert list(loaded.sources) == ["prod", "swh", "open"]
    prod = loaded.sources["prod"]
    assert [step.kind for step in prod.verify] == ["hmac", "basic"]
    hmac = prod.verify[0].hmac
    assert hmac is not None
    assert (hmac.header, hmac.algorithm, hmac.encoding, hmac.tolerance) == (
        "X-Etl-Webhook-Signature",
        "sha256",
        "hex",
        300.0,
    )
    assert [s.get_secret_value() for s in hmac.secrets] == [SECRET]
    basic = prod.verify[1].basic
    assert basic is not None
    assert basic.password.get_secret_value() == PASSWORD
    assert loaded.sources["open"].allow_unsigned
    assert loaded.sources["open"].verify == []


def test_secrets_never_show_in_the_loaded_config() -> None:
    loaded = parse(GOOD, "flowhooks.yaml", ENV, Path("."))
    shown = [repr(loaded), str(loaded), loaded.model_dump_json(), str(loaded.model_dump())]
    shown += [repr(step) for source in loaded.sources.values() for step in source.verify]
    for text in shown:
        for secret in (SECRET, PASSWORD, WHSEC):
            assert secret not in text
    assert "**********" in repr(loaded)


def test_the_loaded_config_is_frozen() -> None:
    loaded = parse(GOOD, "flowhooks.yaml", ENV, Path("."))
    with pytest.raises(ValueError, match="frozen"):
        loaded.sources["open"].allow_unsigned = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            """
            sources:
              prod:
                allow_unsigned: true
            bogus: 1
            """,
            [f"flowhooks.yaml:4: bogus: unknown key (known: {TOP_LEVEL})"],
            id="top level",
        ),
        pytest.param(
            """
            sources:
              prod:
                allow_unsigned: true
                verfy: []
            """,
            [
                "flowhooks.yaml:4: sources.prod.verfy: unknown key"
                " (known: allow_unsigned, etlworks, verify)"
            ],
            id="source",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - hmac: {secrets: ["${SECRET}"]}
                  - hamc: {}
            """,
            [
                "flowhooks.yaml:5: sources.prod.verify[1].hamc: unknown key"
                " (known: basic, header_token, hmac, standard_webhooks)"
            ],
            id="verify step",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - hmac:
                      secrets: ["${SECRET}"]
                      algo: sha1
            """,
            [
                "flowhooks.yaml:6: sources.prod.verify[0].hmac.algo: unknown key (known:"
                " algorithm, encoding, header, prefix, secrets, timestamp_header, tolerance)"
            ],
            id="hmac",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - standard_webhooks: {secrets: ["${WHSEC}"], header: X-Sig}
            """,
            [
                "flowhooks.yaml:4: sources.prod.verify[0].standard_webhooks.header:"
                " unknown key (known: secrets, tolerance)"
            ],
            id="standard webhooks",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - basic: {username: u, password: "${PASSWORD}", realm: x}
            """,
            [
                "flowhooks.yaml:4: sources.prod.verify[0].basic.realm:"
                " unknown key (known: password, username)"
            ],
            id="basic",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - header_token: {header: X-Token, token: "${SECRET}", value: x}
            """,
            [
                "flowhooks.yaml:4: sources.prod.verify[0].header_token.value:"
                " unknown key (known: header, token)"
            ],
            id="header token",
        ),
    ],
)
def test_unknown_keys_are_errors_that_list_the_known_ones(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("algorithm", "md5", "must be one of sha1, sha256, sha512"),
        ("algorithm", "SHA256", "must be one of sha1, sha256, sha512"),
        ("encoding", "base32", "must be one of hex, base64"),
    ],
)
def test_enum_values_are_checked(field: str, value: str, message: str) -> None:
    text = f"""
    sources:
      prod:
        verify:
          - hmac:
              secrets: ["${{SECRET}}"]
              {field}: {value}
    """
    assert errors(text) == [f"flowhooks.yaml:6: sources.prod.verify[0].hmac.{field}: {message}"]


def test_the_contract_example() -> None:
    text = """
    # flowhooks.yaml
    sources:
      # production tenant
      prod:
        verify:
          - hmac:
              header: X-Etl-Webhook-Signature

              secrets: ["${SECRET}"]
              encoding: hex
              algorithm: sha384
    """
    assert errors(text) == [
        "flowhooks.yaml:11: sources.prod.verify[0].hmac.algorithm:"
        " must be one of sha1, sha256, sha512"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "# nothing but a comment\n",
            ["flowhooks.yaml:1: the config is empty: it needs a sources: key"],
            id="sources",
        ),
        pytest.param(
            """
            rules: {}
            """,
            [
                f"flowhooks.yaml:1: rules: unknown key (known: {TOP_LEVEL})",
                "flowhooks.yaml:1: sources: required",
            ],
            id="sources beside an unknown key",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - basic: {username: etlworks}
            """,
            ["flowhooks.yaml:4: sources.prod.verify[0].basic.password: required"],
            id="password",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - header_token:
                      token: "${SECRET}"
            """,
            ["flowhooks.yaml:4: sources.prod.verify[0].header_token.header: required"],
            id="header",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - hmac: {algorithm: sha1}
            """,
            ["flowhooks.yaml:4: sources.prod.verify[0].hmac.secrets: required"],
            id="secrets",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - hmac: {secrets: []}
            """,
            ["flowhooks.yaml:4: sources.prod.verify[0].hmac.secrets: must not be empty"],
            id="empty secrets",
        ),
        pytest.param(
            """
            sources: {}
            """,
            ["flowhooks.yaml:1: sources: must not be empty"],
            id="no source",
        ),
    ],
)
def test_missing_keys(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "sources: [prod]\n",
            ["flowhooks.yaml:1: sources: must be a mapping"],
            id="sources list",
        ),
        pytest.param(
            """
            sources:
              prod:
            """,
            ["flowhooks.yaml:2: sources.prod: must be a mapping"],
            id="source null",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify: {hmac: {secrets: ["${SECRET}"]}}
            """,
            ["flowhooks.yaml:3: sources.prod.verify: must be a list"],
            id="verify mapping",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - hmac: "${SECRET}"
            """,
            ["flowhooks.yaml:4: sources.prod.verify[0].hmac: must be a mapping"],
            id="check string",
        ),
        pytest.param(
            """
            sources:
              prod:
                allow_unsigned: perhaps
            """,
            ["flowhooks.yaml:3: sources.prod.allow_unsigned: must be true or false"],
            id="bool",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - hmac: {secrets: "${SECRET}"}
            """,
            ["flowhooks.yaml:4: sources.prod.verify[0].hmac.secrets: must be a list"],
            id="secrets string",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - hmac: {secrets: ["${SECRET}"], prefix: 7}
            """,
            ["flowhooks.yaml:4: sources.prod.verify[0].hmac.prefix: must be a string"],
            id="prefix int",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - hmac:
                      secrets: ["${SECRET}"]
                      tolerance: soon
            """,
            [
                "flowhooks.yaml:6: sources.prod.verify[0].hmac.tolerance:"
                " must be a duration such as 30s, 5m, 2h or 7d"
            ],
            id="duration",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - hmac:
                      secrets: ["${SECRET}"]
                      tolerance: -5
            """,
            ["flowhooks.yaml:6: sources.prod.verify[0].hmac.tolerance: must not be negative"],
            id="negative duration",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - hmac:
                      secrets: ["${SECRET}"]
                      tolerance: .nan
            """,
            [
                "flowhooks.yaml:6: sources.prod.verify[0].hmac.tolerance:"
                " must be a duration such as 30s, 5m, 2h or 7d"
            ],
            id="nan duration",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - header_token: {header: "X Token", token: "${SECRET}"}
            """,
            [
                "flowhooks.yaml:4: sources.prod.verify[0].header_token.header:"
                " must be an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)"
            ],
            id="header name",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - basic: {username: "", password: "${PASSWORD}"}
            """,
            ["flowhooks.yaml:4: sources.prod.verify[0].basic.username: must not be empty"],
            id="empty username",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - basic: {username: "etl:works", password: "${PASSWORD}"}
            """,
            ["flowhooks.yaml:4: sources.prod.verify[0].basic.username: must not contain a colon"],
            id="colon in username",
        ),
    ],
)
def test_wrong_types_and_values(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


@pytest.mark.parametrize(
    "step",
    [
        "{}",
        '{hmac: {secrets: ["${SECRET}"]}, basic: {username: u, password: "${PASSWORD}"}}',
    ],
    ids=["zero checks", "two checks"],
)
def test_a_verify_entry_names_exactly_one_check(step: str) -> None:
    text = f"""
    sources:
      prod:
        verify:
          - {step}
    """
    assert errors(text) == [
        "flowhooks.yaml:4: sources.prod.verify[0]:"
        " must name exactly one check: hmac, standard_webhooks, basic, header_token"
    ]


def test_a_source_without_checks_is_refused() -> None:
    for source in ("prod: {}", "prod: {verify: []}", "prod: {verify: [], allow_unsigned: false}"):
        assert errors(f"sources:\n  {source}\n") == [
            "flowhooks.yaml:2: sources.prod: has no verify checks: add one,"
            " or set allow_unsigned: true"
        ]


def test_allow_unsigned_is_accepted_alone_and_refused_beside_checks() -> None:
    loaded = parse("sources:\n  open: {allow_unsigned: true}\n", "f.yaml", {}, Path("."))
    assert loaded.sources["open"].allow_unsigned
    text = """
    sources:
      prod:
        allow_unsigned: true
        verify:
          - hmac: {secrets: ["${SECRET}"]}
    """
    assert errors(text) == [
        "flowhooks.yaml:2: sources.prod: allow_unsigned: true contradicts the verify checks listed"
    ]


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ('"a b"', "sources.a b"),
        ('"a:b"', "sources.a:b"),
        ('"a/b"', "sources.a/b"),
        ("-prod", "sources.-prod"),
        ('""', "sources."),
        ("x" * 65, "sources." + "x" * 65),
    ],
)
def test_invalid_source_names(name: str, path: str) -> None:
    text = f"sources:\n  ok: {{allow_unsigned: true}}\n  {name}: {{allow_unsigned: true}}\n"
    assert errors(text) == [f"flowhooks.yaml:3: {path}: invalid name (letters, digits, _ . - only)"]


@pytest.mark.parametrize("name", ["prod", "etlworks-prod", "a.b_c-9", "9", "on", "null", "1.5"])
def test_source_names_are_taken_as_written(name: str) -> None:
    """YAML would read ``on`` as true and ``1.5`` as a number; a name is the text written."""
    loaded = parse(f"sources:\n  {name}: {{allow_unsigned: true}}\n", "f.yaml", {}, Path("."))
    assert list(loaded.sources) == [name]


def test_duplicate_keys_are_errors() -> None:
    text = """
    sources:
      prod:
        allow_unsigned: true
      staging:
        allow_unsigned: true
      prod:
        verify:
          - hmac: {secrets: ["${SECRET}"], algorithm: sha1, algorithm: sha512}
    """
    assert errors(text) == [
        "flowhooks.yaml:6: sources.prod: duplicate key",
        "flowhooks.yaml:8: sources.prod.verify[0].hmac.algorithm: duplicate key",
    ]


INDENTED = (
    "this line is indented differently from the lines above it: the keys of one mapping,"
    " and the items of one list, start in the same column"
)
QUOTE = "put the value in quotes"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            """
            sources:
              prod:
                verify: [
            """,
            [
                "flowhooks.yaml:4:1: invalid YAML: the file ends inside a [ ] list or a { }"
                " mapping: one of them is never closed"
            ],
            id="unclosed flow sequence",
        ),
        pytest.param(
            """
            sources:
              prod:
                allow_unsigned: true
               verify: []
            """,
            [f"flowhooks.yaml:4:4: invalid YAML: {INDENTED}"],
            id="bad indentation",
        ),
        pytest.param(
            """
            routes:
              routes:
                - matchers: ['kind="flow.failed"']
                   actions: [console]
            """,
            [f"flowhooks.yaml:4:8: invalid YAML: {INDENTED}"],
            id="bad indentation in a list",
        ),
        pytest.param(
            """
            sources:
              prod
                allow_unsigned: true
            """,
            [
                "flowhooks.yaml:3:19: invalid YAML: a ':' where no key can start: put a value"
                " holding ': ' in quotes, or look for a key above this line that lacks its ':'"
            ],
            id="a key without its colon",
        ),
        pytest.param(
            """
            actions:
              console: {log: {}, templates: {text: Failed: {{ event.flow_name }}}}
            """,
            [
                "flowhooks.yaml:2:46: invalid YAML: in a { } mapping, entries are separated by"
                " commas: one is missing, or the } is"
            ],
            id="a template in a flow mapping",
        ),
        pytest.param(
            """
            actions:
              console:
                log: {}
                templates:
                  text: {{ event.flow_name }} failed
            """,
            [
                "flowhooks.yaml:5:35: invalid YAML: more text after a value that ended: a value"
                " starting with a quote, { or [ ends where it closes, so put the whole value in"
                ' quotes, such as "{{ event.flow_name }} failed"'
            ],
            id="an unquoted template",
        ),
        pytest.param(
            """
            routes:
              routes:
                - matchers: ["kind"="flow.failed"]
            """,
            [
                "flowhooks.yaml:3:24: invalid YAML: in a [ ] list, items are separated by"
                " commas: put an item that holds a comma or a quote in quotes of the other"
                """ kind, as in ['kind="flow.failed"']"""
            ],
            id="a matcher quoted the wrong way",
        ),
        pytest.param(
            """
            sources:
              prod:
                verify:
                  - hmac: {secrets: ["${SECRET}]}
            other: 1
            """,
            [
                "flowhooks.yaml:4:26: invalid YAML: this quote is never closed: end the value"
                " with the same quote it starts with"
            ],
            id="an unclosed quote, at the quote",
        ),
        pytest.param(
            """
            routes:
              routes:
                - matchers: ["flow_name=~\\"etl-\\d+\\""]
            """,
            [
                "flowhooks.yaml:3:37: invalid YAML: in double quotes a backslash starts an"
                " escape: write a regex in single quotes ('\\d+'), or double the backslash"
            ],
            id="a regex in double quotes",
        ),
        pytest.param(
            "sources:\n  prod: {allow_unsigned: *yes}\n",
            [
                "flowhooks.yaml:2:26: invalid YAML: a value starting with * is an alias of an"
                f" &anchor: {QUOTE}"
            ],
            id="a star",
        ),
        pytest.param(
            "actions:\n  tell: {log: {}, templates: {text: @oncall}}\n",
            [f"flowhooks.yaml:2:37: invalid YAML: a value cannot start with @: {QUOTE}"],
            id="an at sign",
        ),
        pytest.param(
            "sources:\n\tprod: {}\n",
            ["flowhooks.yaml:2:1: invalid YAML: a tab: YAML indents with spaces only"],
            id="tab",
        ),
        pytest.param(
            "sources:\n  prod: {allow_unsigned: true}\n  x: \x01\n",
            [
                "flowhooks.yaml:3:6: invalid YAML: a control character (U+0001):"
                " YAML text cannot hold one"
            ],
            id="control character",
        ),
        pytest.param(
            "sources: {}\n---\nsources: {}\n",
            [
                "flowhooks.yaml:2:1: invalid YAML: the config is one YAML document:"
                " remove the --- line"
            ],
            id="two documents",
        ),
        pytest.param(
            "sources:\n  ? [a, b]\n  : {allow_unsigned: true}\n",
            [
                "flowhooks.yaml:2:5: invalid YAML: a key must be a name, and a value starting"
                " with { or [ is a mapping or a list: put a template such as"
                " {{ event.flow_name }} in quotes"
            ],
            id="list as a key",
        ),
        pytest.param(
            "sources: !!python/object/apply:os.system [true]\n",
            [
                "flowhooks.yaml:1:10: invalid YAML: YAML tags (!!...) are not allowed in the"
                f" config: {QUOTE}"
            ],
            id="python tag",
        ),
        pytest.param(
            "sources: %x\n",
            [f"flowhooks.yaml:1:10: invalid YAML: a value cannot start with %: {QUOTE}"],
            id="a percent sign",
        ),
        pytest.param(
            "sources: " + "[" * 5000 + "]" * 5000 + "\n",
            ["flowhooks.yaml: invalid YAML: nested too deeply"],
            id="deep nesting",
        ),
    ],
)
def test_yaml_syntax_errors_name_line_and_column_with_a_hint(
    text: str, expected: list[str]
) -> None:
    assert errors(text) == expected


def test_aliases_are_not_expanded_exponentially() -> None:
    """A "billion laughs" file is answered at once, not after 10^9 steps."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    lines += ["sources: {prod: {verify: *a9}}"]
    found = errors("\n".join(lines) + "\n")
    assert found[:3] == [
        f"flowhooks.yaml:1: a0: unknown key (known: {TOP_LEVEL})",
        f"flowhooks.yaml:2: a1: unknown key (known: {TOP_LEVEL})",
        f"flowhooks.yaml:3: a2: unknown key (known: {TOP_LEVEL})",
    ]
    assert len(found) == 20  # a0..a9, and the ten lists in verify: that are no mapping


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "sources: &s {prod: *s}\n",
            "flowhooks.yaml:1: sources.prod.prod: unknown key"
            " (known: allow_unsigned, etlworks, verify)",
        ),
        (
            "sources:\n  prod:\n    verify: &v [*v]\n",
            "flowhooks.yaml:3: sources.prod.verify[0]: must be a mapping",
        ),
    ],
)
def test_a_recursive_alias_is_an_error_not_a_hang(text: str, expected: str) -> None:
    assert errors(text) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "flowhooks.yaml:1: the config is empty: it needs a sources: key"),
        ("\n\n# only comments\n", "flowhooks.yaml:1: the config is empty: it needs a sources: key"),
        ("---\n", "flowhooks.yaml:1: the config is empty: it needs a sources: key"),
        ("- sources\n", "flowhooks.yaml:1: the config must be a mapping with a sources: key"),
        ("sources\n", "flowhooks.yaml:1: the config must be a mapping with a sources: key"),
        ("42\n", "flowhooks.yaml:1: the config must be a mapping with a sources: key"),
    ],
    ids=["empty", "comments", "empty document", "list", "string", "number"],
)
def test_empty_and_non_mapping_documents(text: str, expected: str) -> None:
    assert errors(text) == [expected]


def test_standard_webhooks_secrets_must_be_base64() -> None:
    text = """
    sources:
      swh:
        verify:
          - standard_webhooks: {secrets: ["${WHSEC}", "${BAD}"]}
    """
    assert errors(text, {**ENV, "BAD": NOT_BASE64}) == [
        "flowhooks.yaml:4: sources.swh.verify[0].standard_webhooks.secrets:"
        " each secret must be base64, optionally after whsec_"
    ]
    bare = parse(
        yaml(text), "f.yaml", {**ENV, "BAD": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, Path(".")
    )
    check = bare.sources["swh"].verify[0].standard_webhooks
    assert check is not None
    assert len(check.secrets) == 2


class TestSecrets:
    HMAC = """
    sources:
      prod:
        verify:
          - hmac:
              secrets:
                - {ref}
    """

    def hmac_secrets(self, ref: str, environ: dict[str, str], base_dir: Path) -> list[str]:
        loaded = parse(yaml(self.HMAC.format(ref=ref)), "f.yaml", environ, base_dir)
        check = loaded.sources["prod"].verify[0].hmac
        assert check is not None
        return [s.get_secret_value() for s in check.secrets]

    def test_variables_come_from_the_environ_given(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SECRET", "from-the-process-environment")
        assert self.hmac_secrets('"${SECRET}"', ENV, Path(".")) == [SECRET]
        assert self.hmac_secrets('" ${SECRET} "', ENV, Path(".")) == [SECRET]

    def test_a_missing_variable_is_named(self) -> None:
        assert errors(self.HMAC.format(ref='"${ETL_SECRET}"')) == [
            "flowhooks.yaml:6: sources.prod.verify[0].hmac.secrets[0]:"
            " environment variable ETL_SECRET is not set"
        ]

    def test_an_empty_variable_is_named(self) -> None:
        assert errors(self.HMAC.format(ref='"${EMPTY}"')) == [
            "flowhooks.yaml:6: sources.prod.verify[0].hmac.secrets[0]:"
            " environment variable EMPTY is empty"
        ]

    def test_a_file_is_read_relative_to_the_config_and_its_newline_dropped(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / "hmac").write_text(SECRET + "\n")
        (tmp_path / "crlf").write_bytes(b"crlf-secret\r\n")
        (tmp_path / "inner").write_text(" spaced secret \n\n")
        config_file = tmp_path / "flowhooks.yaml"
        config_file.write_text(
            yaml(
                """
                sources:
                  prod:
                    verify:
                      - hmac:
                          secrets:
                            - {file: secrets/hmac}
                            - {file: crlf}
                            - {file: inner}
                """
            )
        )
        loaded = load(config_file, environ={})
        check = loaded.sources["prod"].verify[0].hmac
        assert check is not None
        assert [s.get_secret_value() for s in check.secrets] == [
            SECRET,
            "crlf-secret",
            " spaced secret ",
        ]
        assert SECRET not in repr(loaded)

    def test_an_absolute_file_path_is_taken_as_is(self, tmp_path: Path) -> None:
        (tmp_path / "s").write_text(SECRET)
        ref = f"{{file: {tmp_path / 's'}}}"
        assert self.hmac_secrets(ref, {}, Path("/nonexistent")) == [SECRET]

    def test_a_missing_or_empty_file_is_an_error(self, tmp_path: Path) -> None:
        (tmp_path / "empty").write_text("\n")
        (tmp_path / "dir").mkdir()
        text = """
        sources:
          prod:
            verify:
              - hmac:
                  secrets:
                    - {file: missing}
                    - {file: empty}
                    - {file: dir}
        """
        assert errors(text, base_dir=tmp_path) == [
            f"flowhooks.yaml:6: sources.prod.verify[0].hmac.secrets[0]:"
            f" secret file {tmp_path / 'missing'}: No such file or directory",
            f"flowhooks.yaml:7: sources.prod.verify[0].hmac.secrets[1]:"
            f" secret file {tmp_path / 'empty'} is empty",
            f"flowhooks.yaml:8: sources.prod.verify[0].hmac.secrets[2]:"
            f" secret file {tmp_path / 'dir'}: Is a directory",
        ]

    def test_a_file_that_is_not_text_is_an_error_that_quotes_none_of_it(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "binary").write_bytes(b"\xffsecret-bytes\xfe")
        found = errors(self.HMAC.format(ref="{file: binary}"), base_dir=tmp_path)
        assert found == [
            f"flowhooks.yaml:6: sources.prod.verify[0].hmac.secrets[0]:"
            f" secret file {tmp_path / 'binary'} is not UTF-8 text"
        ]
        assert "secret-bytes" not in found[0]
        assert "0xff" not in found[0]

    @pytest.mark.parametrize(
        ("ref", "message"),
        [
            (
                '"hunter2-literal"',
                'must be a secret reference: "${VAR}" or {file: PATH}, not a literal value',
            ),
            (
                '"prefix-${SECRET}"',
                'must be a secret reference: "${VAR}" or {file: PATH}, not a literal value',
            ),
            (
                '"$SECRET"',
                'must be a secret reference: "${VAR}" or {file: PATH}, not a literal value',
            ),
            ("12345678", 'must be a secret reference: "${VAR}" or {file: PATH}'),
            ("{path: x}", 'must be a secret reference: "${VAR}" or {file: PATH}'),
            ("{file: x, mode: r}", 'must be a secret reference: "${VAR}" or {file: PATH}'),
            ("[a]", 'must be a secret reference: "${VAR}" or {file: PATH}'),
        ],
    )
    def test_anything_but_a_reference_is_refused_without_quoting_it(
        self, ref: str, message: str
    ) -> None:
        found = errors(self.HMAC.format(ref=ref))
        assert found == [f"flowhooks.yaml:6: sources.prod.verify[0].hmac.secrets[0]: {message}"]
        assert "hunter2" not in found[0]
        assert "12345678" not in found[0]

    def test_every_kind_of_secret_field_takes_references(self) -> None:
        text = """
        sources:
          a:
            verify:
              - basic: {username: u, password: literal-password}
              - header_token: {header: X-T, token: literal-token}
        """
        found = errors(text)
        assert found == [
            "flowhooks.yaml:4: sources.a.verify[0].basic.password:"
            ' must be a secret reference: "${VAR}" or {file: PATH}, not a literal value',
            "flowhooks.yaml:5: sources.a.verify[1].header_token.token:"
            ' must be a secret reference: "${VAR}" or {file: PATH}, not a literal value',
        ]
        assert not any("literal-" in line for line in found)


def test_resolved_secrets_never_show_in_errors_about_other_keys() -> None:
    text = """
    sources:
      prod:
        verify:
          - hmac: {secrets: ["${SECRET}"], algorithm: sha3}
          - basic: {username: "${PASSWORD}", password: "${PASSWORD}", x: 1}
          - header_token: {header: "${SECRET}", token: "${SECRET}"}
    """
    found = errors(text)  # errors() asserts no secret value appears
    assert found[0] == (
        "flowhooks.yaml:4: sources.prod.verify[0].hmac.algorithm:"
        " must be one of sha1, sha256, sha512"
    )
    assert len(found) == 3


def test_several_errors_are_reported_at_once_sorted_by_line() -> None:
    text = """
    sources:
      zeta:
        verify:
          - hmac: {secrets: ["${MISSING}"], encoding: base32}
      alpha:
        allow_unsigned: yes please
      "bad name": {allow_unsigned: true}
      beta:
        verify:
          - basic: {username: u}
    extra: true
    """
    assert errors(text) == [
        "flowhooks.yaml:4: sources.zeta.verify[0].hmac.encoding: must be one of hex, base64",
        "flowhooks.yaml:4: sources.zeta.verify[0].hmac.secrets[0]:"
        " environment variable MISSING is not set",
        "flowhooks.yaml:6: sources.alpha.allow_unsigned: must be true or false",
        "flowhooks.yaml:7: sources.bad name: invalid name (letters, digits, _ . - only)",
        "flowhooks.yaml:10: sources.beta.verify[0].basic.password: required",
        f"flowhooks.yaml:11: extra: unknown key (known: {TOP_LEVEL})",
    ]


class TestLoad:
    def test_it_reads_the_file_and_labels_errors_with_its_path(self, tmp_path: Path) -> None:
        path = tmp_path / "flowhooks.yaml"
        path.write_text("sources:\n  prod:\n    allow_unsigned: 1.5\n")
        with pytest.raises(ConfigError) as caught:
            load(path, environ={})
        assert caught.value.errors == [
            f"{path}:3: sources.prod.allow_unsigned: must be true or false"
        ]

    def test_it_takes_a_string_path(self, tmp_path: Path) -> None:
        path = tmp_path / "flowhooks.yaml"
        path.write_text(GOOD)
        assert isinstance(load(str(path), environ=ENV), Config)

    def test_it_reads_the_process_environment_by_default(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "flowhooks.yaml"
        path.write_text(GOOD)
        for name, value in ENV.items():
            monkeypatch.setenv(name, value)
        hmac = load(path).sources["prod"].verify[0].hmac
        assert hmac is not None
        assert hmac.secrets[0].get_secret_value() == SECRET

    def test_a_missing_file(self, tmp_path: Path) -> None:
        path = tmp_path / "nope.yaml"
        with pytest.raises(ConfigError) as caught:
            load(path, environ={})
        assert caught.value.errors == [f"{path}: cannot read: No such file or directory"]

    def test_a_directory(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            load(tmp_path, environ={})
        assert caught.value.errors == [f"{tmp_path}: cannot read: Is a directory"]

    def test_a_file_that_is_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "flowhooks.yaml"
        path.write_bytes(b"sources:\n  prod: {allow_unsigned: true}\n# caf\xe9\n")
        with pytest.raises(ConfigError) as caught:
            load(path, environ={})
        assert caught.value.errors == [f"{path}:3: not UTF-8 text"]

    def test_a_byte_order_mark_is_fine(self, tmp_path: Path) -> None:
        path = tmp_path / "flowhooks.yaml"
        path.write_bytes(b"\xef\xbb\xbfsources:\n  prod: {allow_unsigned: true}\n")
        assert list(load(path, environ={}).sources) == ["prod"]


def test_the_shipped_example_loads() -> None:
    example = Path(config.__file__).parent / "flowhooks.example.yaml"
    loaded = load(example, environ={"ETLWORKS_WEBHOOK_SECRET": SECRET})
    assert list(loaded.sources) == ["etlworks"]
    assert [step.kind for step in loaded.sources["etlworks"].verify] == ["hmac"]
    with pytest.raises(ConfigError) as caught:
        load(example, environ={})
    assert [e.split(": ", 1)[1] for e in caught.value.errors] == [
        "sources.etlworks.verify[0].hmac.secrets[0]:"
        " environment variable ETLWORKS_WEBHOOK_SECRET is not set"
    ]


class TestCheckConfig:
    def test_a_good_file(self, tmp_path: Path) -> None:
        path = tmp_path / "flowhooks.yaml"
        path.write_text(GOOD)
        result = CliRunner().invoke(main, ["check-config", str(path)], env=ENV)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"{path}: ok (3 source(s): prod, swh, open)\n"
        assert result.stderr == ""
        assert SECRET not in result.output

    def test_a_bad_file(self, tmp_path: Path) -> None:
        path = tmp_path / "flowhooks.yaml"
        path.write_text(
            yaml(
                """
                sources:
                  prod:
                    verify:
                      - hmac: {secrets: ["${SECRET}"], algorithm: md5}
                  staging: {}
                """
            )
        )
        result = CliRunner().invoke(main, ["check-config", str(path)], env=ENV)
        assert result.exit_code == 2  # a config error, as for every command
        assert result.stdout == ""
        assert result.stderr == (
            f"{path}:4: sources.prod.verify[0].hmac.algorithm:"
            " must be one of sha1, sha256, sha512\n"
            f"{path}:5: sources.staging: has no verify checks: add one,"
            " or set allow_unsigned: true\n"
        )
        assert SECRET not in result.output

    def test_the_path_defaults_to_flowhooks_config(self, tmp_path: Path) -> None:
        path = tmp_path / "elsewhere.yaml"
        path.write_text("sources: {open: {allow_unsigned: true}}\n")
        env = {"FLOWHOOKS_CONFIG": str(path)}
        result = CliRunner().invoke(main, ["check-config"], env=env)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"{path}: ok (1 source(s): open)\n"


class TestSecretsOfOnePart:
    """``secrets_of``: a load that needs the secrets of one part of the config only."""

    TEXT = yaml(
        """
        sources:
          prod:
            verify:
              - hmac: {secrets: ["${SECRET}"]}
          partner:
            verify:
              - basic: {username: partner, password: "${PARTNER}"}
              - standard_webhooks: {secrets: ["${PARTNER_WHSEC}"]}
        actions:
          ops-slack: {slack: {webhook_url: "${SLACK_URL}"}}
          audit:
            webhook:
              url: "${AUDIT_URL}"
              headers: {X-Token: "${AUDIT_TOKEN}"}
              sign: {secret: {file: audit-whsec}}
        etlworks:
          prod: {url: "https://app.etlworks.com/rest", api_key: "${ETLWORKS_API_KEY}"}
        routes: {actions: [ops-slack]}
        """
    )

    def test_only_that_part_must_resolve(self) -> None:
        loaded = parse(
            self.TEXT,
            "f.yaml",
            {"SECRET": SECRET},
            Path("/nonexistent"),
            secrets_of=("sources", "prod"),
        )
        hmac = loaded.sources["prod"].verify[0].hmac
        assert hmac is not None
        assert hmac.secrets[0].get_secret_value() == SECRET
        slack = loaded.actions["ops-slack"].slack
        assert slack is not None
        assert isinstance(slack.webhook_url, Unresolved)
        with pytest.raises(
            RuntimeError,
            match=r"^an unresolved secret was used: environment variable SLACK_URL is not set$",
        ):
            slack.webhook_url.get_secret_value()
        assert list(loaded.sources) == ["prod", "partner"]

    def test_that_part_is_reported_alone(self) -> None:
        with pytest.raises(ConfigError) as caught:
            parse(
                self.TEXT,
                "f.yaml",
                {"SECRET": SECRET},
                Path("/nonexistent"),
                secrets_of=("sources", "partner"),
            )
        assert caught.value.errors == [
            "f.yaml:7: sources.partner.verify[0].basic.password:"
            " environment variable PARTNER is not set",
            "f.yaml:8: sources.partner.verify[1].standard_webhooks.secrets[0]:"
            " environment variable PARTNER_WHSEC is not set",
        ]

    def test_a_secret_that_is_set_is_still_checked(self) -> None:
        """Left unresolved is only what is absent: a value set but wrong is an error anywhere."""
        environ = {"SECRET": SECRET, "PARTNER_WHSEC": NOT_BASE64}
        with pytest.raises(ConfigError) as caught:
            parse(
                self.TEXT, "f.yaml", environ, Path("/nonexistent"), secrets_of=("sources", "prod")
            )
        assert caught.value.errors == [
            "f.yaml:8: sources.partner.verify[1].standard_webhooks.secrets:"
            " each secret must be base64, optionally after whsec_"
        ]
        assert NOT_BASE64 not in str(caught.value)

    def test_structural_errors_elsewhere_still_count(self) -> None:
        text = self.TEXT.replace("webhook_url:", "webhook_uri:")
        with pytest.raises(ConfigError) as caught:
            parse(
                text,
                "f.yaml",
                {"SECRET": SECRET},
                Path("/nonexistent"),
                secrets_of=("sources", "prod"),
            )
        assert caught.value.errors == [
            "f.yaml:10: actions.ops-slack.slack.webhook_uri: unknown key (known: webhook_url)",
            "f.yaml:10: actions.ops-slack.slack.webhook_url: required",
        ]

    def test_without_it_every_secret_must_resolve(self) -> None:
        with pytest.raises(ConfigError) as caught:
            parse(self.TEXT, "f.yaml", {"SECRET": SECRET}, Path("/nonexistent"))
        assert len(caught.value.errors) == 7  # every variable and file but SECRET
