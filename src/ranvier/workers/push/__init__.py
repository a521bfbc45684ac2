"""Pusher delivery: one supervised worker per pusher (HTTP push gateways, e-mail)."""
