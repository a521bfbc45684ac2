"""`/sync` (spec: Client-Server API > Syncing): see `service.py` for the request flow."""
