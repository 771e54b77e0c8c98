"""Contracts shared by the receiver and the workers: settings, the config file, the event model."""
