"""Sync: the device agent, the central hub, and the v1 wire protocol between them."""
