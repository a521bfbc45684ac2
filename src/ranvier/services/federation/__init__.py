"""Inbound room federation: received transactions, gap filling, serving history and
state, resident-side membership handshakes, queries and EDUs (issue #6)."""
