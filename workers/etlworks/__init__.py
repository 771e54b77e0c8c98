"""Acting on Etlworks: :mod:`.client` speaks its API (run a flow, read its executions, switch a
schedule) under the sinks' error contract, :class:`~workers.sinks.DeliveryError`."""
