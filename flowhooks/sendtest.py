"""``flowhooks send-test``: a realistic Etlworks webhook, signed the way a source expects.

:func:`sign` is the sending side of :mod:`receiver.signatures`: it produces the headers each
check verifies, with the first secret listed (the current one during a rotation).
"""

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from config.schema import VerifyStep

OUTCOMES = {
    "FLOW_FAILED": ("error", "Database connection lost: ORA-03113 end-of-file on channel"),
    "FLOW_SUCCESS": ("success", None),
    "FLOW_WARNING": ("warning", "3 rows rejected by the destination"),
    "FLOW_CANCELED": ("canceled", None),
}


def sample(event: str, flow_id: int, now: float) -> tuple[bytes, dict[str, str]]:
    """A JSON body and the ``X-Etl-Webhook-*`` headers Etlworks sends with it."""
    status, error = OUTCOMES.get(event, ("success", None))
    audit_id = uuid.uuid4().int % 10**9  # one execution per sample, as Etlworks numbers them
    event_id = str(uuid.uuid4())
    url = f"https://app.etlworks.com/rest/v1/flows/{flow_id}?auditId={audit_id}"
    finished = int(now * 1000)
    body = {
        "eventId": event_id,
        "eventType": event,
        "webhookId": 1,
        "entityId": audit_id,
        "entityUrl": url,
        "timestamp": finished,
        "entity": {
            "flowId": flow_id,
            "flowName": f"warehouse-load-{flow_id}",
            "auditId": audit_id,
            "status": status,
            "started": finished - 754_000,
            "finished": finished,
            "tags": ["warehouse", "nightly"],
            "parameters": {"runDate": datetime.fromtimestamp(now, UTC).date().isoformat()},
            **({"exception": error} if error else {}),
        },
    }
    headers = {
        "X-Etl-Webhook-Event-Id": event_id,
        "X-Etl-Webhook-Event": event,
        "X-Etl-Webhook-Id": "1",
        "X-Etl-Webhook-Entity-Id": str(audit_id),
        "X-Etl-Webhook-Entity-URL": url,
    }
    return json.dumps(body).encode(), headers


def sign(steps: Sequence[VerifyStep], body: bytes, now: float) -> dict[str, str]:
    """The headers that make ``body`` pass every step, signed at time ``now``."""
    headers: dict[str, str] = {}
    for step in steps:
        if step.hmac is not None:
            cfg = step.hmac
            signed = body
            if cfg.timestamp_header is not None:
                stamp = str(int(now * 1000))
                headers[cfg.timestamp_header] = stamp
                signed = stamp.encode() + b"." + body
            key = cfg.secrets[0].get_secret_value().encode()
            mac = hmac.new(key, signed, getattr(hashlib, cfg.algorithm)).digest()
            value = mac.hex() if cfg.encoding == "hex" else base64.b64encode(mac).decode()
            headers[cfg.header] = (cfg.prefix or "") + value
        elif step.standard_webhooks is not None:
            secret = step.standard_webhooks.secrets[0].get_secret_value()
            key = base64.b64decode(secret.removeprefix("whsec_"))
            msg_id, stamp = f"msg_{uuid.uuid4().hex}", str(int(now))
            mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
            headers["webhook-id"] = msg_id
            headers["webhook-timestamp"] = stamp
            headers["webhook-signature"] = "v1," + base64.b64encode(mac).decode()
        elif step.basic is not None:
            pair = f"{step.basic.username}:{step.basic.password.get_secret_value()}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif step.header_token is not None:
            headers[step.header_token.header] = step.header_token.token.get_secret_value()
    return headers
