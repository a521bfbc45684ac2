"""A hostile federation peer for tests: a fake homeserver with its own signing key whose
every answer (`/state_ids`, `/state`, `/event`, `/event_auth`, `/get_missing_events`,
`/backfill`) a test can script, that forges events freely and pushes `/send`
transactions. See `peer.py` (the server), `forge.py` (events) and `scenario.py` (a
Ranvier room on either database engine joined by the peer, plus the checks every attack
test makes afterwards)."""
