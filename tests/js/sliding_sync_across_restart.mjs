// matrix-js-sdk's SlidingSync kept running while the server restarts: after the first
// response it writes READY_FILE and waits for the message "after restart", which the
// test sends once the server is back. Prints what it saw: whether the room came again
// as `initial`, and any error codes (M_UNKNOWN_POS would mean the connection was lost).
import { writeFileSync } from "node:fs";
import { createClient } from "matrix-js-sdk";
import { SlidingSync, SlidingSyncEvent, SlidingSyncState } from "matrix-js-sdk/lib/sliding-sync.js";

const baseUrl = process.env.HS_URL;
const room = process.env.ROOM;
const client = createClient({
  baseUrl,
  accessToken: process.env.TOKEN,
  userId: process.env.USER_ID,
  deviceId: process.env.DEVICE_ID,
});
const out = { errors: [], before: [], after: [], initialAfterReady: 0, positions: [] };
let ready = false;
let done;
const finished = new Promise((resolve) => (done = resolve));

const lists = new Map([["all", { ranges: [[0, 9]], timeline_limit: 5, required_state: [] }]]);
const ss = new SlidingSync(baseUrl, lists, {}, client, 2000);
ss.on(SlidingSyncEvent.RoomData, (roomId, data) => {
  if (roomId !== room) return;
  const bodies = data.timeline.map((e) => e.content?.body).filter(Boolean);
  (ready ? out.after : out.before).push(...bodies);
  if (ready && data.initial) out.initialAfterReady += 1;
  if (bodies.includes("after restart")) done();
});
ss.on(SlidingSyncEvent.Lifecycle, (state, resp, err) => {
  if (err) out.errors.push(err.errcode ?? String(err.httpStatus ?? err));
  if (state === SlidingSyncState.Complete && resp) {
    out.positions.push(resp.pos);
    if (!ready && out.before.length > 0) {
      ready = true;
      writeFileSync(process.env.READY_FILE, resp.pos);
    }
  }
});
const loop = ss.start();
const timer = setTimeout(() => done(), 60000);
await finished;
clearTimeout(timer);
ss.stop();
await loop.catch(() => {});
console.log(JSON.stringify(out));
