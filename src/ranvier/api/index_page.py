"""GET / - a page telling a visitor what runs here and how to connect an app.

Like Synapse's "It works!" page: the server name, the URL to give a client, and whether
registration is open. Served on the `client` resource.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from aiohttp import web

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Ranvier is running</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>Ranvier is running</h1>
<p>This is the Matrix homeserver for <strong>{server_name}</strong>.</p>
<p>To connect, open a Matrix client such as Element and enter the homeserver
<code>{client_url}</code> (or just <code>{server_name}</code>).</p>
<p>Registration: {registration}.</p>
</body></html>
"""


@dataclass(frozen=True, slots=True)
class IndexPage:
    server_name: str
    client_url: str
    # "open", "with a registration token" or "closed".
    registration: str

    async def get_index(self, _req: MatrixRequest) -> web.Response:
        text = _PAGE.format(
            server_name=html.escape(self.server_name),
            client_url=html.escape(self.client_url),
            registration=html.escape(self.registration),
        )
        return web.Response(text=text, content_type="text/html")

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("GET", ("/",), self.get_index, auth=AuthMode.NONE)]
