"""PagerDuty Events API v2: POST the rendered event to ``action.url`` with the ``routing_key``
(a secret) inserted at send time, so the key is never part of a rendered payload, a job or a
timeline.

202 is success, 400 (an invalid event) is permanent, 429 and 5xx are retried. The response body
is never quoted: it describes a request that held the key. Idempotency is PagerDuty's own: the
rendered event's ``dedup_key`` folds repeated triggers into one incident.
"""

from collections.abc import Mapping
from typing import Any

import httpx

from config.schema import PagerDutyAction
from workers.sinks import check_response, encode_json, post


async def send(
    action: PagerDutyAction,
    payload: Mapping[str, Any],
    *,
    client: httpx.AsyncClient,
    delivery_id: str,
) -> int:
    """Send ``payload`` (``event_action``, ``dedup_key``, ``payload``, ``links``…, without
    ``routing_key``) and return the status. Raises :class:`~workers.sinks.DeliveryError`."""
    event = {**payload, "routing_key": action.routing_key.get_secret_value()}
    headers = {"content-type": "application/json"}
    response = await post("pagerduty", client, action.url, encode_json("pagerduty", event), headers)
    check_response("pagerduty", response)
    return response.status_code
