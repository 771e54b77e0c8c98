"""config.etlworks through the loader: instances, the four Etlworks actions and their
references, every error by its exact message."""

from pathlib import Path

import pytest

from config.etlworks import RequestAction, RetryAction, RunAction, ScheduleAction
from config.loader import ConfigError, parse
from config.schema import Config

GOOD = """\
sources:
  etl: {allow_unsigned: true, etlworks: prod}
etlworks:
  prod: {url: "http://127.0.0.1:9/rest", api_key: "${KEY}"}
actions:
  page: {log: {}}
  run-b: {etlworks_run: {flow_id: 102, params: {runDate: "{{ event.params.runDate }}"}, wait: 2h}}
  retry: {etlworks_retry: {max_attempts: 2, delay: 5m, budget: {runs: 5, per: 1h},
          escalate: [page]}}
  pause: {etlworks_schedule: {schedule_id: 77}}
  tag: {etlworks_request: {method: PUT, path: "/v1/flows/{{ event.flow_id }}/tags",
        body: {tags: ["{{ event.kind }}"]}}}
routes:
  actions: [page]
  routes:
    - matchers: ['kind="flow.failed"', 'consecutive_failures="3"']
      actions: [pause]
      confirm: true
"""


def load(text: str) -> Config:
    return parse(text, "f.yaml", {"KEY": "k-123"}, Path("."))


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return caught.value.errors


def test_a_good_config_loads_with_every_action() -> None:
    config = load(GOOD)
    assert config.sources["etl"].etlworks == "prod"
    assert config.etlworks["prod"].api_key.get_secret_value() == "k-123"
    acting = {name: action.etlworks for name, action in config.actions.items()}
    assert acting["page"] is None
    run, retry = acting["run-b"], acting["retry"]
    assert isinstance(run, RunAction) and (run.flow_id, run.wait) == ("102", 7200)
    assert isinstance(retry, RetryAction) and retry.budget is not None
    assert (retry.max_attempts, retry.delay, retry.budget.runs) == (2, 300, 5)
    assert isinstance(acting["pause"], ScheduleAction) and acting["pause"].enabled is False
    assert isinstance(acting["tag"], RequestAction) and acting["tag"].method == "PUT"
    assert config.routes.routes[0].confirm is True
    assert "k-123" not in repr(config)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "etlworks: prod}",
            "etlworks: test}",
            "f.yaml:2: sources.etl.etlworks: unknown Etlworks instance 'test' (known: prod)",
        ),
        (
            '"http://127.0.0.1:9/rest"',
            '"ftp://x"',
            "f.yaml:4: etlworks.prod.url: must be an http:// or https:// URL",
        ),
        (
            "flow_id: 102,",
            "flow_id: 102, instance: test,",
            "f.yaml:7: actions.run-b.etlworks_run.instance: unknown Etlworks instance 'test'"
            " (known: prod)",
        ),
        (
            "escalate: [page]",
            "escalate: [pager]",
            "f.yaml:9: actions.retry.etlworks_retry.escalate[0]: unknown action 'pager'"
            " (known: page, pause, retry, run-b, tag)",
        ),
        (
            "escalate: [page]",
            "escalate: [pause]",
            "f.yaml:9: actions.retry.etlworks_retry.escalate[0]: escalates to another Etlworks"
            " action: name notifiers",
        ),
        (
            'path: "/v1/flows',
            'path: "v1/flows',
            "f.yaml:11: actions.tag.etlworks_request.path: must start with / (it is appended to"
            " the instance's url)",
        ),
        (
            "params: {runDate:",
            "params: {flowhooks_trigger: x, runDate:",
            "f.yaml:7: actions.run-b.etlworks_run.params: flowhooks_trigger is set by flowhooks"
            " to find its runs again",
        ),
        (
            '"{{ event.params.runDate }}"',
            '"{{ event.params.runDate "',
            "f.yaml:7: actions.run-b.etlworks_run.params.runDate: template does not compile",
        ),
        (
            "delay: 5m,",
            "delay: 5m, max_attempts: 0,",
            None,
        ),
    ],
)
def test_mistakes_point_at_file_line_and_key(old: str, new: str, message: str | None) -> None:
    assert old in GOOD
    found = errors(GOOD.replace(old, new, 1))
    if message is None:
        assert len(found) == 1
    elif message.endswith("does not compile"):
        assert found[0].startswith(message)
    else:
        assert found == [message]


def test_an_etlworks_action_without_any_instance_is_an_error() -> None:
    text = (
        "sources: {etl: {allow_unsigned: true}}\n"
        "actions:\n  p: {etlworks_schedule: {schedule_id: 1}}\n"
    )
    assert errors(text) == [
        "f.yaml:3: actions.p.etlworks_schedule: acts on Etlworks, but no etlworks: instance is"
        " defined"
    ]
