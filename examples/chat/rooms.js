// Several rooms on one connection, with the JavaScript client of clients/js
// (served by the node at /client/). Each room is a channel room:<name> that
// the page subscribes to at run time (the route allows room:*), with the
// last 50 messages first; the client reconnects and resumes every room from
// its last message, and says when one could not be recovered. Who is online
// is asked of the room and kept up to date by join and leave events. The
// route's own channel, chat (the one-room page's), is a room too.
import { connect } from "/client/index.js";

const statusLine = document.getElementById("status");
const roomList = document.getElementById("rooms");
const list = document.getElementById("messages");
const onlineLine = document.getElementById("online");
const send = document.getElementById("send");
const input = document.getElementById("text");
const sendButton = send.querySelector("button");
const name = new URLSearchParams(location.search).get("name") ?? "";
const maxShown = 500; // per room: older messages are dropped, so a tab left open stays light

const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws?name=" + encodeURIComponent(name);
const client = connect(url);
const rooms = new Map(); // channel → {sub, items, unread, online, button}
let current = null;

function setStatus(state, text) {
  statusLine.dataset.state = state;
  statusLine.textContent = text;
  sendButton.disabled = state !== "open" || client.protocol !== "redis_ws.v2";
}
client.on("connecting", () => setStatus("connecting", "connecting…"));
client.on("connected", ({ protocol }) =>
  setStatus("open", protocol === "redis_ws.v2" ? "connected" : `connected with ${protocol}: this server has no run-time rooms`));
client.on("disconnected", ({ code, reconnectIn }) =>
  setStatus("closed", `closed (${code}), reconnecting in ${(reconnectIn / 1000).toFixed(1)} s`));
client.on("closed", ({ code, reason }) => setStatus("closed", `closed (${code}) ${reason}: reload the page`));

function item(text, kind) {
  const li = document.createElement("li");
  const time = document.createElement("time");
  const body = document.createElement("span");
  time.textContent = new Date().toLocaleTimeString();
  body.className = kind; // "text": a message; "notice": the page's own note
  body.textContent = text; // never innerHTML: messages come from anyone
  li.append(time, body);
  return li;
}

function add(room, text, kind = "text") {
  room.items.push(item(text, kind));
  if (room.items.length > maxShown) room.items.shift().remove();
  if (room === current) {
    list.append(room.items.at(-1));
    list.scrollTop = list.scrollHeight;
  } else if (kind === "text") {
    room.unread++;
  }
  showRooms();
}

function showRooms() {
  for (const [channel, room] of rooms) {
    room.button.textContent = channel + (room.unread ? ` (${room.unread})` : "");
    room.button.setAttribute("aria-current", String(room === current));
  }
}

function showOnline() {
  const names = current?.online ? [...current.online].sort() : null;
  onlineLine.dataset.users = names ? names.join(",") : "";
  onlineLine.textContent = names === null ? "who is online: unknown for now"
    : names.length > 0 ? "online: " + names.join(", ") : "online: nobody with a name (open ?name=you)";
}

// askOnline asks who is in the room; join and leave events that come
// meanwhile are applied after the answer, so none is lost and none undone.
async function askOnline(room) {
  room.online = null;
  room.pending = [];
  try {
    room.online = new Set(await room.sub.presence());
  } catch {
    room.online = null;
  }
  for (const [type, user] of room.pending) type === "join" ? room.online?.add(user) : room.online?.delete(user);
  room.pending = null;
  if (room === current) showOnline();
}

function follow(sub) {
  const room = { sub, items: [], unread: 0, online: null, pending: null, button: document.createElement("button") };
  rooms.set(sub.channel, room);
  const li = document.createElement("li");
  li.append(room.button);
  roomList.append(li);
  room.button.addEventListener("click", () => select(room));
  sub.on("message", (m) => add(room, m.binary ? `[${m.data.length} bytes of binary]` : m.data));
  sub.on("subscribed", () => askOnline(room));
  sub.on("unrecovered", () => add(room, "Reconnected: some messages may have been missed.", "notice"));
  sub.on("presence_reset", () => askOnline(room));
  for (const type of ["join", "leave"]) {
    sub.on(type, ({ user }) => {
      if (room.pending) return room.pending.push([type, user]);
      type === "join" ? room.online?.add(user) : room.online?.delete(user);
      if (room === current) showOnline();
    });
  }
  sub.on("error", (err) => {
    add(room, `Refused: ${err.reason} (${err.code})`, "notice");
  });
  if (!current) select(room);
  showRooms();
  return room;
}

function select(room) {
  current = room;
  room.unread = 0;
  list.replaceChildren(...room.items);
  list.scrollTop = list.scrollHeight;
  showRooms();
  showOnline();
  input.focus();
}

// The route's own channel comes by itself; the others are asked for.
client.on("subscription", (sub) => follow(sub));
for (const r of ["lobby", "random"]) follow(client.subscribe("room:" + r, { rewind: 50 }));

document.getElementById("join").addEventListener("submit", (event) => {
  event.preventDefault();
  const field = event.target.elements.room;
  const channel = "room:" + field.value;
  select(rooms.get(channel) ?? follow(client.subscribe(channel, { rewind: 50 })));
  field.value = "";
});

send.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current || input.value === "") return;
  const room = current;
  const text = input.value;
  input.value = "";
  try {
    await client.publish(room.sub.channel, text); // shown when it comes back through Redis
  } catch (err) {
    // Not sent again by itself: it may or may not have been published.
    add(room, `Not sent (${err.code}): ${text}`, "notice");
  }
});
