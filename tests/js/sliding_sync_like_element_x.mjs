// Runs matrix-js-sdk's SlidingSync (MSC4186, the path Element X and Element Web's
// "simplified sliding sync" use) against the server: logs in, creates and joins rooms,
// syncs a room list (ranges [0,1], then scrolled to [0,9]) and a room subscription,
// receives a new message live, joins an invite and sees the DM flag, then leaves a room. Prints one
// JSON object with what the client saw.
import { createClient } from "matrix-js-sdk";
import { SlidingSync, SlidingSyncEvent, SlidingSyncState } from "matrix-js-sdk/lib/sliding-sync.js";

const baseUrl = process.env.HS_URL;
const out = { responses: 0, errors: [] };

const login = await createClient({ baseUrl }).loginRequest({
  type: "m.login.password",
  identifier: { type: "m.id.user", user: process.env.USERNAME },
  password: process.env.PASSWORD,
  initial_device_display_name: "Element X (test)",
});
const client = createClient({
  baseUrl,
  accessToken: login.access_token,
  userId: login.user_id,
  deviceId: login.device_id,
});
const versions = await client.getVersions();
out.advertised = versions.unstable_features?.["org.matrix.simplified_msc3575"] === true;

const names = ["Alpha", "Beta", "Gamma"];
const created = [];
for (const name of names) {
  created.push((await client.createRoom({ name })).room_id);
}
await client.sendTextMessage(created[0], "hello alpha");
await client.joinRoom(process.env.JOIN_ROOM);

const seen = {};
const record = (roomId, data) => {
  const r = (seen[roomId] ??= { timeline: [], initialCount: 0, states: [] });
  if (data.initial) r.initialCount += 1;
  if (data.name !== undefined) r.name = data.name;
  if (data.is_dm !== undefined) r.isDm = data.is_dm;
  if (data.membership !== undefined) r.membership = data.membership;
  if (data.invite_state) r.inviteState = data.invite_state.map((e) => e.type);
  if (data.joined_count !== undefined) r.joinedCount = data.joined_count;
  for (const e of data.timeline) r.timeline.push(e.content?.body ?? e.type);
  for (const e of data.required_state) r.states.push(`${e.type}|${e.state_key}`);
};

const lists = new Map([
  [
    "all",
    {
      ranges: [[0, 1]],
      timeline_limit: 1,
      required_state: [
        ["m.room.name", ""],
        ["m.room.member", "$ME"],
      ],
    },
  ],
]);
const sub = { timeline_limit: 10, required_state: [["*", "*"]] };
const ss = new SlidingSync(baseUrl, lists, sub, client, 3000);
ss.on(SlidingSyncEvent.RoomData, (roomId, data) => record(roomId, data));

const waiters = [];
const waitFor = (pred, what) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 20000);
    waiters.push({ pred, resolve: (v) => (clearTimeout(timer), resolve(v)) });
  });
ss.on(SlidingSyncEvent.Lifecycle, (state, resp, err) => {
  if (err) out.errors.push(String(err.errcode ?? err));
  if (state !== SlidingSyncState.Complete || !resp) return;
  out.responses += 1;
  for (const w of [...waiters]) {
    if (w.pred(resp)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(resp);
    }
  }
});

const loop = ss.start();
const first = await waitFor(() => true, "the first response");
out.firstCount = first.lists.all.count;
out.firstRooms = Object.keys(first.rooms).sort();

// Scroll the list: the rooms not sent yet come.
ss.setListRanges("all", [[0, 9]]);
const scrolled = await waitFor((r) => Object.keys(r.rooms).length > 0, "the scrolled rooms");
out.scrolledRooms = Object.keys(scrolled.rooms).sort();

// Open a room: a subscription with its own timeline_limit and required_state.
ss.modifyRoomSubscriptions(new Set([created[2]]));
const opened = await waitFor((r) => created[2] in r.rooms, "the subscription");
out.opened = {
  timelineLimitCovered: opened.rooms[created[2]].timeline.length,
  stateTypes: opened.rooms[created[2]].required_state.map((e) => e.type).sort(),
};

// A new message arrives live.
await client.sendTextMessage(created[1], "live message");
await waitFor(
  (r) => (r.rooms[created[1]]?.timeline ?? []).some((e) => e.content?.body === "live message"),
  "the live message",
);

// An invite, then a join, and the DM flag from m.direct.
const inviteRoom = process.env.INVITE_ROOM;
await waitFor(() => seen[inviteRoom]?.membership === "invite", "the invite");
await client.setAccountData("m.direct", { [process.env.INVITER]: [inviteRoom] });
await client.joinRoom(inviteRoom);
await waitFor(() => seen[inviteRoom]?.membership === "join", "the join");

// Leave a room: it comes once more, with the leave.
await client.leave(process.env.JOIN_ROOM);
await waitFor(() => seen[process.env.JOIN_ROOM]?.membership === "leave", "the leave");
const afterLeave = await waitFor(() => true, "the response after the leave");
out.countAfterLeave = afterLeave.lists.all.count;

ss.stop();
await loop.catch(() => {});
out.seen = seen;
out.created = created;
console.log(JSON.stringify(out));
