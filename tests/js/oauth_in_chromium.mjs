// A real browser (Debian's Chromium, driven by playwright-core) signs up through
// Ranvier's OAuth pages, as Element does: matrix-js-sdk discovers, registers the client
// and builds the authorization URL (PKCE S256, prompt=create); Chromium fills in the
// sign-up form and allows access; the redirect reaches a loopback "app" server; the SDK
// exchanges the code and uses the token; then the browser signs the device out from the
// account page and the token must stop working. Any CSP violation or page error fails.
import http from "node:http";
import { chromium } from "playwright-core";
import { createClient, OAuth2, MatrixError } from "matrix-js-sdk";

const baseUrl = process.env.HS_URL;
const out = { cspViolations: [], pageErrors: [] };

// The native app's loopback redirect target.
const app = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end("signed in");
});
await new Promise((resolve) => app.listen(0, "127.0.0.1", resolve));
const redirectUri = `http://127.0.0.1:${app.address().port}/callback`;

async function whoami(accessToken) {
  try {
    return await createClient({ baseUrl, accessToken }).whoami();
  } catch (e) {
    if (e instanceof MatrixError) return { errcode: e.errcode, status: e.httpStatus };
    throw e;
  }
}

const metadata = await createClient({ baseUrl }).getAuthMetadata();
const clientId = await OAuth2.registerClient(metadata, {
  client_name: "Element (Chromium test)",
  client_uri: "https://element.example.org/",
  application_type: "native",
  redirect_uris: [redirectUri],
});
const oauth = new OAuth2(metadata, { clientId });
const url = await oauth.generateAuthorizationCodeGrantUrl("chromium-state", redirectUri, "fragment", "create");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  page.on("console", (msg) => {
    if (/Content Security Policy|Refused to/.test(msg.text())) out.cspViolations.push(msg.text());
  });
  page.on("pageerror", (err) => out.pageErrors.push(String(err)));

  const first = await page.goto(url);
  out.signupTitle = await page.title();
  out.csp = first.headers()["content-security-policy"];
  await page.fill("#username", process.env.USERNAME);
  await page.fill("#password", process.env.PASSWORD);
  await page.fill("#password2", process.env.PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForSelector("text=Allow access?");
  out.consentShowsClient = (await page.content()).includes("Element (Chromium test)");
  await Promise.all([
    page.waitForURL((u) => u.toString().startsWith(redirectUri)),
    page.click("button[value=allow]"),
  ]);
  const callback = new URL(page.url());
  const params = new URLSearchParams(callback.hash.slice(1));
  out.state = params.get("state");
  out.callbackUsesFragment = callback.search === "" && params.has("code");

  const tokens = await oauth.completeAuthorizationCodeGrant(params.get("code"), redirectUri);
  out.whoami = await whoami(tokens.access_token);
  const refreshed = await oauth.performRefreshTokenGrant(tokens.refresh_token);
  out.afterRefresh = await whoami(refreshed.access_token);

  // The account page (account_management_uri) signs the device out.
  await page.goto(`${metadata.account_management_uri}?action=org.matrix.session_view&device_id=${oauth.context.deviceId}`);
  out.accountListsDevice = (await page.content()).includes(oauth.context.deviceId);
  await page.click(`form[action$="/account/end_session"] button`);
  await page.waitForSelector("text=Your sessions");
  out.accountAfterSignOut = (await page.content()).includes(oauth.context.deviceId);
  out.afterSignOut = await whoami(refreshed.access_token);
  out.deviceId = oauth.context.deviceId;
} finally {
  await browser.close();
  app.close();
}
console.log(JSON.stringify(out));
