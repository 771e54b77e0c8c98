"""The ``flowhooks`` command: the composition root above the receiver and the workers."""
