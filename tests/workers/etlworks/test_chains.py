"""workers.etlworks.chains: loops of Etlworks runs, reported by the loader with file, line and
key path, by the same check the commands and the worker's reload run."""

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.loader import ConfigError, parse
from config.schema import Config
from flowhooks.cli import main
from workers.etlworks.chains import loops

HEAD = """\
sources:
  etl: {allow_unsigned: true}
etlworks:
  prod: {url: "https://etl.example/rest", api_key: "${KEY}"}
"""
"""Lines 1 to 4 of every config below."""
HINT = "(set loop: true if intended)"
ENV = {"KEY": "an-api-key"}


def config(text: str) -> str:
    return HEAD + textwrap.dedent(text).lstrip("\n")


def problems(text: str) -> list[str]:
    """The errors of loading ``config(text)`` with the loop check; none if it loads."""
    try:
        parse(config(text), "flowhooks.yaml", ENV, Path("."), checks=(loops,))
    except ConfigError as exc:
        return exc.errors
    return []


CASES = {
    "a run that runs itself": (
        """
        actions:
          load-marts: {etlworks_run: {flow_id: 12346}}
        routes:
          routes:
            - matchers: ['flow_id="12346"', 'kind="flow.failed"']
              actions: [load-marts]
        """,
        [
            "flowhooks.yaml:6: actions.load-marts.etlworks_run: runs flow 12346, whose outcome"
            f" leads back to it: load-marts → load-marts {HINT}"
        ],
    ),
    "two runs through routes": (
        """
        actions:
          refresh: {etlworks_run: {flow_id: 7}}
          load-marts: {etlworks_run: {flow_id: 12346}}
          ops: {log: {}}
        routes:
          actions: [ops]
          routes:
            - matchers: ['flow_id="12346"']
              actions: [refresh]
            - matchers: ['flow_id="7"', 'status="success"']
              actions: [load-marts]
        """,
        [
            "flowhooks.yaml:7: actions.load-marts.etlworks_run: runs flow 12346, whose outcome"
            f" leads back to it: load-marts → refresh → load-marts {HINT}"
        ],
    ),
    "a run that a join's then runs again": (
        """
        actions:
          load-marts: {etlworks_run: {flow_id: 12346}}
          extract: {etlworks_run: {flow_id: 101}}
        routes:
          routes:
            - matchers: ['flow_id="12346"', 'kind="flow.succeeded"']
              actions: [extract]
        joins:
          marts:
            all: ['flow_id="101"', 'flow_id="102"']
            window: {rolling: 1h}
            then: [load-marts]
        """,
        [
            "flowhooks.yaml:7: actions.extract.etlworks_run: runs flow 101, whose outcome"
            f" leads back to it: extract → load-marts → extract {HINT}"
        ],
    ),
    "loop: true declares it": (
        """
        actions:
          refresh: {etlworks_run: {flow_id: 7, loop: true}}
          load-marts: {etlworks_run: {flow_id: 12346}}
        routes:
          routes:
            - {matchers: ['flow_id="12346"'], actions: [refresh]}
            - {matchers: ['flow_id="7"'], actions: [load-marts]}
        """,
        [],
    ),
    "a retry is no loop": (
        """
        actions:
          load-marts: {etlworks_run: {flow_id: 12346}}
          again: {etlworks_retry: {max_attempts: 3}}
        routes:
          routes:
            - {matchers: ['kind="flow.failed"'], actions: [again]}
        """,
        [],
    ),
    "a matcher on flow_name may match": (
        """
        actions:
          load-marts: {etlworks_run: {flow_id: 12346}}
        routes:
          routes:
            - {matchers: ['flow_name="marts"', 'kind="flow.timeout"'], actions: [load-marts]}
        """,
        [
            "flowhooks.yaml:6: actions.load-marts.etlworks_run: runs flow 12346, whose outcome"
            f" leads back to it: load-marts → load-marts {HINT}"
        ],
    ),
    "a route that may match leaves its siblings and parent in play": (
        """
        actions:
          load-marts: {etlworks_run: {flow_id: 12346}}
          ops: {log: {}}
        routes:
          routes:
            - matchers: ['flow_id="12346"']
              actions: [load-marts]
              routes:
                - {matchers: ['tags="nightly"'], actions: [ops]}
        """,
        [
            "flowhooks.yaml:6: actions.load-marts.etlworks_run: runs flow 12346, whose outcome"
            f" leads back to it: load-marts → load-marts {HINT}"
        ],
    ),
    "a route that surely matches first wins": (
        """
        actions:
          load-marts: {etlworks_run: {flow_id: 12346}}
          ops: {log: {}}
        routes:
          routes:
            - {matchers: ['flow_id="12346"'], actions: [ops]}
            - {matchers: ['kind=~"flow.*"'], actions: [load-marts]}
        """,
        [],
    ),
    "continue goes on to the next route": (
        """
        actions:
          load-marts: {etlworks_run: {flow_id: 12346}}
          ops: {log: {}}
        routes:
          routes:
            - {matchers: ['flow_id="12346"'], actions: [ops], continue: true}
            - {matchers: ['kind=~"flow.*"'], actions: [load-marts]}
        """,
        [
            "flowhooks.yaml:6: actions.load-marts.etlworks_run: runs flow 12346, whose outcome"
            f" leads back to it: load-marts → load-marts {HINT}"
        ],
    ),
    "the outcome of another flow leads nowhere": (
        """
        actions:
          load-marts: {etlworks_run: {flow_id: 12346}}
        routes:
          routes:
            - {matchers: ['flow_id="1"'], actions: [load-marts]}
            - {matchers: ['kind="resource.changed"'], actions: [load-marts]}
        """,
        [],
    ),
    "each loop once, from its first action, the declared one left out": (
        """
        actions:
          c: {etlworks_run: {flow_id: 3}}
          b: {etlworks_run: {flow_id: 2}}
          a: {etlworks_run: {flow_id: 1}}
          d: {etlworks_run: {flow_id: 4, loop: true}}
        routes:
          routes:
            - {matchers: ['flow_id="1"'], actions: [b, c]}
            - {matchers: ['flow_id="2"'], actions: [a, c]}
            - {matchers: ['flow_id="3"'], actions: [a, d]}
            - {matchers: ['flow_id="4"'], actions: [b]}
        """,
        [
            f"flowhooks.yaml:8: actions.a.etlworks_run: runs flow 1, whose outcome {part}"
            for part in (
                f"leads back to it: a → b → a {HINT}",
                f"leads back to it: a → b → c → a {HINT}",
                f"leads back to it: a → c → a {HINT}",
            )
        ],
    ),
}


@pytest.mark.parametrize(("text", "expected"), CASES.values(), ids=CASES.keys())
def test_loops(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


SOURCES = """\
sources:
  eu: {allow_unsigned: true, etlworks: prod-eu}
  us: {allow_unsigned: true, etlworks: prod-us}
etlworks:
  prod-eu: {url: "https://eu.example/rest", api_key: "${KEY}"}
  prod-us: {url: "https://us.example/rest", api_key: "${KEY}"}
actions:
  load-marts: {etlworks_run: {flow_id: 12346, instance: prod-eu}}
  load-any: {etlworks_run: {flow_id: 5}}
routes:
  routes:
    - {matchers: ['source="us"'], actions: [load-marts, load-any]}
"""


def test_a_runs_events_may_come_on_any_source() -> None:
    """A run's outcome carries the source of the event that caused it, whose instance need
    not be the one the run acts on."""
    with pytest.raises(ConfigError) as caught:
        parse(SOURCES, "flowhooks.yaml", ENV, Path("."), checks=(loops,))
    assert caught.value.errors == [
        f"flowhooks.yaml:{line}: actions.{name}.etlworks_run: runs flow {flow}, whose outcome"
        f" leads back to it: {chain} {HINT}"
        for line, name, flow, chain in (
            (8, "load-marts", 12346, "load-marts → load-marts"),
            (9, "load-any", 5, "load-any → load-any"),
            (9, "load-any", 5, "load-any → load-marts → load-any"),
        )
    ]


def test_names_that_do_not_resolve_are_reported_first() -> None:
    text = """
        actions:
          load-marts: {etlworks_run: {flow_id: 12346}}
        routes:
          actions: [load-marts, nope]
        """
    assert problems(text) == [
        "flowhooks.yaml:8: routes.actions[1]: unknown action 'nope' (known: load-marts)"
    ]


def test_without_the_check_a_loop_loads() -> None:
    text = config(CASES["a run that runs itself"][0])
    assert isinstance(parse(text, "flowhooks.yaml", ENV, Path(".")), Config)


A_LOOP = config(CASES["two runs through routes"][0])
A_LOOP_ERROR = (
    "actions.load-marts.etlworks_run: runs flow 12346, whose outcome leads back to it:"
    f" load-marts → refresh → load-marts {HINT}"
)


def test_routes_test_refuses_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "flowhooks.yaml"
    path.write_text(A_LOOP, encoding="utf-8")
    result = CliRunner(env=ENV).invoke(main, ["routes", "test", "--config", str(path)])
    assert result.exit_code == 2
    assert result.output == f"{path}:7: {A_LOOP_ERROR}\n"


def test_check_config_refuses_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "flowhooks.yaml"
    path.write_text(A_LOOP, encoding="utf-8")
    result = CliRunner(env=ENV).invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    assert result.output == f"{path}:7: {A_LOOP_ERROR}\n"
