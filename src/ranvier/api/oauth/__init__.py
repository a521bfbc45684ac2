"""HTTP edge of the OAuth 2.0 authorization server (issue #13)."""
