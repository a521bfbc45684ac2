"""The built-in OAuth 2.0 authorization server of the Matrix spec's OAuth 2.0 API.

Spec: Client-Server API > Client authentication > OAuth 2.0 API (v1.15+; MSC2964 code
grant with PKCE, MSC2965 discovery, MSC2966 dynamic registration, MSC2967 scopes,
MSC4191 account management, MSC4341 device authorization grant).
"""
