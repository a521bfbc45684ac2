"""A real browser through the whole OAuth sign-up (tests/js/oauth_in_chromium.mjs).

Debian's Chromium, driven by playwright-core, fills in the sign-up and consent pages
under their real Content-Security-Policy and cookies; matrix-js-sdk does the protocol.
Skipped when Chromium is not installed (`apt-get install chromium`), except under CI.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.helpers.accounts import PASSWORD
from tests.helpers.ci import missing_component
from tests.helpers.js import run_js_client
from tests.helpers.oauth import oauth_server

CHROMIUM = os.environ.get("RANVIER_TEST_CHROMIUM") or shutil.which("chromium")


async def test_sign_up_in_chromium(tmp_path: Path) -> None:
    if CHROMIUM is None:
        missing_component("Chromium is not installed")
    async with oauth_server(tmp_path) as (_hs, api):
        out = await run_js_client(
            "oauth_in_chromium.mjs",
            {
                "HS_URL": api.base_url,
                "CHROMIUM": CHROMIUM,
                "USERNAME": "olivia",
                "PASSWORD": PASSWORD,
            },
            time_limit_s=120,
        )
    user_id = api.user_id("olivia")
    assert out["cspViolations"] == []
    assert out["pageErrors"] == []
    assert out["signupTitle"].startswith("Create account")
    assert "frame-ancestors 'none'" in out["csp"]
    assert out["consentShowsClient"]
    assert out["state"] == "chromium-state"
    assert out["callbackUsesFragment"]
    assert out["whoami"] == {
        "user_id": user_id,
        "device_id": out["deviceId"],
        "is_guest": False,
    }
    assert out["afterRefresh"]["user_id"] == user_id
    assert out["accountListsDevice"]
    assert not out["accountAfterSignOut"]
    assert out["afterSignOut"] == {"errcode": "M_UNKNOWN_TOKEN", "status": 401}
