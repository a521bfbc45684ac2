// Two matrix-js-sdk clients with Rust crypto, each syncing only through SlidingSync
// (with the to_device and e2ee extensions, as Element Web's simplified sliding sync
// does): alice sends a message in an encrypted room; the Megolm session reaches bob's
// new device as an Olm-encrypted to-device message, and bob decrypts the message.
// Prints one JSON object with what bob saw.
import { createClient, ClientEvent, MatrixEventEvent } from "matrix-js-sdk";
import { SlidingSync } from "matrix-js-sdk/lib/sliding-sync.js";

const baseUrl = process.env.HS_URL;
const room = process.env.ROOM;
const out = {};

async function start(user) {
  const login = await createClient({ baseUrl }).loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password: process.env.PASSWORD,
  });
  const client = createClient({
    baseUrl,
    accessToken: login.access_token,
    userId: login.user_id,
    deviceId: login.device_id,
  });
  await client.initRustCrypto({ useIndexedDB: false });
  const lists = new Map([
    ["all", { ranges: [[0, 9]], timeline_limit: 10, required_state: [["*", "*"]] }],
  ]);
  const ss = new SlidingSync(baseUrl, lists, {}, client, 2000);
  const prepared = new Promise((resolve) =>
    client.on(ClientEvent.Sync, (state) => {
      if (state === "PREPARED" || state === "SYNCING") resolve();
    }),
  );
  await client.startClient({ slidingSync: ss });
  await prepared;
  return { client, deviceId: login.device_id, userId: login.user_id };
}

const within = (ms, what, promise) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)),
  ]);

const alice = await start(process.env.ALICE);
const bob = await start(process.env.BOB);
out.bobDevice = bob.deviceId;

// Wait until alice can see bob's new device keys (the e2ee extension's device lists).
await within(30000, "bob's device keys", (async () => {
  for (;;) {
    const devices = await alice.client.getCrypto().getUserDeviceInfo([bob.userId], true);
    if (devices.get(bob.userId)?.has(bob.deviceId)) return;
    await new Promise((r) => setTimeout(r, 300));
  }
})());

const decrypted = new Promise((resolve) => {
  bob.client.on(MatrixEventEvent.Decrypted, (event) => {
    if (event.getRoomId() === room && event.getType() === "m.room.message") resolve(event);
  });
});
await within(30000, "alice's room", (async () => {
  while (!alice.client.getRoom(room)) await new Promise((r) => setTimeout(r, 200));
})());
await alice.client.sendTextMessage(room, "the secret");
const event = await within(45000, "decryption on bob's device", decrypted);
out.wireType = event.getWireType();
out.body = event.getContent().body;
alice.client.stopClient();
bob.client.stopClient();
console.log(JSON.stringify(out));
process.exit(0);
