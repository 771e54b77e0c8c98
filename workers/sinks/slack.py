"""Slack incoming webhooks: POST a Block Kit message to the webhook URL, which is a secret.

Success is a 200 whose body is ``ok``. Slack's errors (400 ``invalid_payload``, 403
``action_prohibited``, 404 ``no_service``, 410 ``channel_is_archived``…) are permanent; 429 (with
``Retry-After``) and 5xx are retried. Slack's error code is kept in the reason: it is a short
lowercase word, checked to be one and not to be part of the URL.
"""

import re
from collections.abc import Mapping
from typing import Any

import httpx

from config.schema import SlackAction
from workers.sinks import check_response, encode_json, post

_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{1,63}")


async def send(
    action: SlackAction,
    payload: Mapping[str, Any],
    *,
    client: httpx.AsyncClient,
    delivery_id: str,
) -> int:
    """Post ``payload`` (a Block Kit message: ``text``, ``blocks``) and return the status.

    Raises :class:`~workers.sinks.DeliveryError`. Slack has no idempotency key, so
    ``delivery_id`` is not sent.
    """
    url = action.webhook_url.get_secret_value()
    headers = {"content-type": "application/json"}
    response = await post("slack", client, url, encode_json("slack", payload), headers)
    check_response("slack", response, ok=_ok, detail=_error_code(response, url))
    return response.status_code


def _ok(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.text.strip() == "ok"


def _error_code(response: httpx.Response, url: str) -> str | None:
    code = response.text.strip()
    if code == "ok" or not _ERROR_CODE.fullmatch(code) or code in url:
        return None
    return code
