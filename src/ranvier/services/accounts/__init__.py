"""Local accounts: registration, login sessions, user-interactive auth, devices, profiles.

Modules: `sessions` (access/refresh/login tokens, the token cache), `uia`
(user-interactive auth), `login`, `registration`, `devices` (also logout, password change,
deactivation), `profiles`, `hooks` (listeners other services connect).
"""
