"""The log sink: the rendered text on the ``flowhooks.deliveries`` logger."""

import logging

import pytest

from config.schema import LogAction
from tests.workers.sinks.standins import run
from workers.sinks import log


@pytest.mark.parametrize(
    ("level", "number"), [("info", logging.INFO), ("warning", logging.WARNING)]
)
def test_writes_the_text_at_the_action_level(
    caplog: pytest.LogCaptureFixture, level: str, number: int
) -> None:
    caplog.set_level(logging.INFO)
    text = "warehouse-load failed\nerror: 100% disk full %s {{ 7*7 }}"
    result = run(
        lambda client: log.send(
            LogAction.model_validate({"level": level}), text, client=client, delivery_id="d1"
        )
    )
    assert result is None
    [record] = [r for r in caplog.records if r.name == "flowhooks.deliveries"]
    assert (record.levelno, record.getMessage()) == (number, text)
    assert (record.__dict__["delivery_id"], record.__dict__["sink"]) == ("d1", "log")
