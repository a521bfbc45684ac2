// Signs up exactly as Element Web does, through matrix-js-sdk: the registration probe
// (POST /register with no username, password or auth, to learn the flows), then the
// sign-up form driven by the SDK's InteractiveAuth helper, which completes the dummy
// stage by itself. Then the new account logs in with its password, as a second device.
// Prints one JSON object with what the server answered at each step.
import { createClient, InteractiveAuth, MatrixError } from "matrix-js-sdk";

const baseUrl = process.env.HS_URL;
const username = process.env.USERNAME;
const password = process.env.PASSWORD;
const deviceName = "app.element.io: Chrome on Linux";
const out = {};

const client = createClient({ baseUrl });
out.versions = (await client.getVersions()).versions;
out.loginFlows = (await client.loginFlows()).flows.map((f) => f.type);

// Element's Registration.tsx: makeRegisterRequest(null) with the still-empty form.
let authData;
try {
  await client.registerRequest({
    username: undefined,
    password: undefined,
    initial_device_display_name: deviceName,
    auth: undefined,
    inhibit_login: undefined,
  });
  out.probe = { status: 200 };
} catch (e) {
  if (!(e instanceof MatrixError)) throw e;
  authData = e.data;
  out.probe = {
    status: e.httpStatus,
    errcode: e.errcode ?? null,
    flows: e.data.flows,
    params: e.data.params,
    hasSession: typeof e.data.session === "string",
  };
}

// The form is filled in: InteractiveAuth drives the rest of the UIA session.
const auth = new InteractiveAuth({
  matrixClient: client,
  authData,
  doRequest: (authDict) =>
    client.registerRequest({
      username,
      password,
      initial_device_display_name: deviceName,
      auth: authDict ?? undefined,
      inhibit_login: undefined,
    }),
  // The SDK submits the dummy stage itself; other stages would need a form.
  stateUpdated: (stage) => {
    throw new Error(`unexpected UIA stage ${stage}`);
  },
  requestEmailToken: async () => {
    throw new Error("no e-mail stage expected");
  },
});
const registered = await auth.attemptAuth();
out.registered = {
  user_id: registered.user_id,
  device_id: registered.device_id,
  hasAccessToken: typeof registered.access_token === "string",
};

const signedIn = createClient({
  baseUrl,
  accessToken: registered.access_token,
  userId: registered.user_id,
});
out.whoami = await signedIn.whoami();
out.devices = (await signedIn.getDevices()).devices.map((d) => d.display_name);

const login = await createClient({ baseUrl }).loginRequest({
  type: "m.login.password",
  identifier: { type: "m.id.user", user: username },
  password,
  initial_device_display_name: "second device",
});
out.login = { user_id: login.user_id, newDevice: login.device_id !== registered.device_id };
console.log(JSON.stringify(out));
