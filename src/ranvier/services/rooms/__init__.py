"""Room business logic: creation, membership, aliases and directory, reading with access
rules, and the client event serialiser shared with sync."""
