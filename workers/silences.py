"""Silences, as the workers read them. They live in :mod:`config.silences`, since the command
line and the receiver's admin API make and end them too; this module keeps the workers'
imports where they were."""

from config.silences import KEEP_EXPIRED, Silence, create, every, expire, matching, parse_all

__all__ = ["KEEP_EXPIRED", "Silence", "create", "every", "expire", "matching", "parse_all"]
