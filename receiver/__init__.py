"""The HTTP side: the app factory, the webhook endpoint, signature checks, normalization and the
durable write that queues each event for the workers."""
