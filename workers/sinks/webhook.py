"""Generic webhooks: POST JSON to a URL (a secret) with the configured headers (secrets too),
optionally signed with the Standard Webhooks scheme so the far side can verify flowhooks.

Signing sends ``webhook-id`` (the delivery id, the same on every retry, for the receiver's
dedup), ``webhook-timestamp`` (now, in seconds) and ``webhook-signature``:
``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the key being the base64 after
``whsec_``. Every delivery also carries ``Idempotency-Key: {delivery id}``. Any 2xx is success;
:func:`~workers.sinks.check_response` decides the rest.

The body is the event as JSON, or the action's ``body`` template, whose values are escaped as
JSON string content (``"{{ event.flow_name }}"`` is safe inside quotes, ``{{ event|tojson }}``
embeds a whole value); it must render a JSON object.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from config.sinks import WebhookAction
from workers.sinks import DeliveryError, check_response, encode_json, post
from workers.sinks.destination import Acting, Destination
from workers.sinks.text import (
    Digest,
    Rendered,
    RenderError,
    json_value,
    render_template,
    summary_line,
    template_context,
    without_raw,
)

__all__ = ["DESTINATION", "send"]


def _render_body(action: Acting, context: Mapping[str, Any]) -> str:
    return render_template(action, "body", context, {}, finalize=json_value)


def _json_body(action: Acting, context: Mapping[str, Any]) -> dict[str, Any]:
    text = _render_body(action, context)
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise RenderError(
            f"webhook template 'body' did not render JSON: {exc.msg} ({where})"
        ) from None
    except ValueError as exc:  # NaN or Infinity
        raise RenderError(f"webhook template 'body' did not render JSON: {exc}") from None
    if not isinstance(body, dict):
        raise RenderError(
            f"webhook template 'body' must render a JSON object, not {type(body).__name__}"
        )
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _webhook(action: Acting, event: Mapping[str, Any], context: Mapping[str, Any]) -> Rendered:
    if "body" in action.templates:
        body = _json_body(action, context)
    else:
        body = {
            "type": "flowhooks.notification",
            "resolved": context["resolved"],
            "route": context["route"],
            "event": without_raw(event),
        }
    summary = f"{'resolved ' if context['resolved'] else ''}{event.get('kind')}: {context['name']}"
    return Rendered("webhook", body, summary_line(summary))


def _webhook_digest(action: Acting, digest: Digest) -> Rendered:
    if "body" in action.templates:
        context = template_context(
            digest.last, resolved=False, route=digest.route, links=None, digest=digest
        )
        body = _json_body(action, context)
    else:
        body = {
            "type": "flowhooks.digest",
            "route": digest.route,
            "group": dict(digest.group),
            "count": len(digest.events),
            "events": [without_raw(event) for event in digest.events],
        }
    return Rendered("webhook", body, summary_line(f"digest: {digest.head}"))


_FIELD_VALUE = re.compile(r"[\x20-\x7e\t]*")
"""What a header value may hold: visible ASCII, space and tab (no CR/LF to split it)."""


async def send(
    action: WebhookAction,
    payload: Mapping[str, Any] | list[Any],
    *,
    client: httpx.AsyncClient,
    delivery_id: str,
) -> int:
    """POST ``payload`` as JSON and return the status. Raises
    :class:`~workers.sinks.DeliveryError`: permanent for a header value that cannot be sent
    or a signing secret that is not base64, else as the shared classifier says."""
    body = encode_json("webhook", payload)
    # httpx.Headers, so that a configured Content-Type replaces ours rather than joining it,
    # and no configured header can stand in for the signature's.
    headers = httpx.Headers({"content-type": "application/json", "idempotency-key": delivery_id})
    for name, value in action.headers.items():
        headers[name] = _header_value(name, value)
    if action.sign is not None:
        headers.update(_signature(action.sign.secret, delivery_id, int(time.time()), body))
    url = action.url.get_secret_value()
    response = await post("webhook", client, url, body, headers, deadline=action.timeout)
    check_response("webhook", response)
    return response.status_code


def _header_value(name: str, value: SecretStr) -> str:
    text = value.get_secret_value()
    if not _FIELD_VALUE.fullmatch(text):
        reason = f"header {name} has a value that cannot be sent (control or non-ASCII)"
        raise DeliveryError("webhook", reason, retryable=False)
    return text


def _signature(secret: SecretStr, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    key = _key(secret)
    if key is None:
        raise DeliveryError("webhook", "signing secret is not a base64 key", retryable=False)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def _key(secret: SecretStr) -> bytes | None:
    try:
        key = base64.b64decode(secret.get_secret_value().removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return None  # raised by the caller, so no chained exception comes along
    return key or None


DESTINATION = Destination(
    name="webhook",
    settings=WebhookAction,
    render=_webhook,
    digest=_webhook_digest,
    send=send,
    payload=(Mapping, list),
    templates={"body": ""},
)
