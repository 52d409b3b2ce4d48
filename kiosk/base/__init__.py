"""Shared definitions every layer may use: errors, config building blocks, time formats, the punch record, events."""
