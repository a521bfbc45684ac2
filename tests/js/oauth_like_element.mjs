// matrix-js-sdk's OAuth 2.0 API helpers (lib/oauth/, as Element Web uses them) against
// Ranvier. matrix-js-sdk 43 names them MatrixClient.getAuthMetadata, OAuth2.registerClient,
// OAuth2#generateAuthorizationCodeGrantUrl, #completeAuthorizationCodeGrant,
// #performRefreshTokenGrant, #revokeToken and the device grant pair (the older
// discoverAndValidateOIDCIssuerWellKnown/registerOidcClient/... of lib/oidc/ are gone).
// Everything runs in Node 22: fetch, WebCrypto (PKCE S256) and getRandomValues suffice.
//
// STEP=start: discover, register the client, print the authorization URL and context.
// STEP=finish: exchange CODE, use the token, refresh, revoke; print what happened.
// STEP=device: device grant; the test approves USER_CODE in the pages meanwhile.
import { createClient, OAuth2, MatrixError } from "matrix-js-sdk";

const baseUrl = process.env.HS_URL;
const redirectUri = process.env.REDIRECT_URI;
const out = {};
const client = createClient({ baseUrl });
const metadata = await client.getAuthMetadata();

async function whoami(accessToken) {
  try {
    return await createClient({ baseUrl, accessToken }).whoami();
  } catch (e) {
    if (e instanceof MatrixError) return { errcode: e.errcode, status: e.httpStatus };
    throw e;
  }
}

if (process.env.STEP === "start") {
  out.issuer = metadata.issuer;
  const clientId = await OAuth2.registerClient(metadata, {
    client_name: "Element (js-sdk test)",
    client_uri: "https://element.example.org/",
    logo_uri: "https://element.example.org/logo.png",
    application_type: "native",
    redirect_uris: [redirectUri],
  });
  const oauth = new OAuth2(metadata, { clientId });
  out.clientId = clientId;
  out.deviceId = oauth.context.deviceId;
  out.codeVerifier = oauth.context.codeVerifier;
  out.url = await oauth.generateAuthorizationCodeGrantUrl("js-state", redirectUri, "fragment", "create");
} else if (process.env.STEP === "finish") {
  const oauth = new OAuth2(metadata, {
    clientId: process.env.CLIENT_ID,
    deviceId: process.env.DEVICE_ID,
    codeVerifier: process.env.CODE_VERIFIER,
  });
  const tokens = await oauth.completeAuthorizationCodeGrant(process.env.CODE, redirectUri);
  out.tokenType = tokens.token_type;
  out.expiresIn = tokens.expires_in;
  out.scope = tokens.scope;
  out.whoami = await whoami(tokens.access_token);
  const refreshed = await oauth.performRefreshTokenGrant(tokens.refresh_token);
  out.oldTokenAfterRefresh = await whoami(tokens.access_token);
  out.newToken = await whoami(refreshed.access_token);
  await oauth.revokeToken(refreshed.access_token, "access_token");
  await oauth.revokeToken(refreshed.refresh_token, "refresh_token");
  out.afterRevoke = await whoami(refreshed.access_token);
  try {
    await oauth.performRefreshTokenGrant(refreshed.refresh_token);
    out.refreshAfterRevoke = "accepted";
  } catch (e) {
    out.refreshAfterRevoke = { name: e.constructor.name, status: e.httpStatus, error: e.error ?? e.data?.error };
  }
} else if (process.env.STEP === "device") {
  const clientId = await OAuth2.registerClient(metadata, {
    client_name: "TV (js-sdk test)",
    client_uri: "https://element.example.org/",
    application_type: "native",
    redirect_uris: [redirectUri],
  });
  const oauth = new OAuth2(metadata, { clientId });
  const session = await oauth.startDeviceAuthorizationGrant();
  // Hand the user code to the test (stderr is not parsed), then wait for approval.
  process.stderr.write(`USER_CODE=${session.user_code}\n`);
  const fs = await import("node:fs");
  fs.writeFileSync(process.env.USER_CODE_FILE, session.user_code);
  session.interval = 1; // poll faster than the server asks: the server answers slow_down
  const result = await oauth.waitForDeviceAuthorizationGrant(session);
  out.deviceId = oauth.context.deviceId;
  out.result = result.access_token ? "token" : result;
  if (result.access_token) out.whoami = await whoami(result.access_token);
}
console.log(JSON.stringify(out));
