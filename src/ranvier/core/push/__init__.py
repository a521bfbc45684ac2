"""Push rules (spec: Client-Server API > Modules > Push Notifications > Push Rules).

Pure and synchronous (house rule 1): the rule model and its validation (`rules`), the
server-default rules (`defaults`), a user's rules merged with the defaults (`ruleset`),
dotted key paths (`paths`), glob matching (`glob`) and evaluation (`evaluator`). The
services layer loads rules and room facts, then calls in here.
"""
