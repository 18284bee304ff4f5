// The chat page: one WebSocket to /ws on the host that served this page.
// Everything shown came back through Redis, including what this page sent:
// redis_ws delivers a client's own messages to it, so there is no local echo.
// It speaks redis_ws.v1: JSON frames that carry each message's place in the
// route's history (node.caddyfile has `history`). The first connection asks
// for the last 50 messages; a reconnection for those after the last one seen,
// so a page whose node went away misses nothing and shows nothing twice.
// The route has presence too: the page shows who is online, by the name in
// its own URL (/?name=alice; without one it is there anonymously).
"use strict";

const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
const statusLine = document.getElementById("status");
const list = document.getElementById("messages");
const form = document.getElementById("send");
const input = document.getElementById("text");
const button = form.querySelector("button");
const onlineLine = document.getElementById("online");
const name = new URLSearchParams(location.search).get("name") ?? "";
const who = name === "" ? "" : "&name=" + encodeURIComponent(name);

const minDelay = 500; // ms before the first reconnect attempt
const maxDelay = 10000; // ms, the cap of the backoff
const maxShown = 500; // older messages are removed so a tab left open stays light

let socket = null;
let failures = 0; // attempts since the last successful open
let resume = "?rewind=50"; // then ?since=<epoch>:<offset> of the last message seen

function setStatus(state, text) {
	statusLine.dataset.state = state;
	statusLine.textContent = text;
	button.disabled = state !== "open";
}

function show(text, kind = "text") {
	const item = document.createElement("li");
	const time = document.createElement("time");
	const body = document.createElement("span");
	time.textContent = new Date().toLocaleTimeString();
	body.className = kind; // "text": a message; "notice": the page's own note
	body.textContent = text; // never innerHTML: messages come from anyone
	item.append(time, body);
	list.append(item);
	while (list.childElementCount > maxShown) list.firstElementChild.remove();
	list.scrollTop = list.scrollHeight;
}

// Who is online: asked of the route (a GET with Accept: application/json)
// whenever the socket is subscribed, then kept up to date by the join and
// leave events. Events that come while the answer is on its way are
// applied after it, so none is lost and none undone.
let online = null; // the names, while known
let pending = []; // events that came while asking

async function askOnline() {
	online = null;
	pending = [];
	try {
		const answer = await fetch("ws", { headers: { Accept: "application/json" } });
		if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
		online = new Set((await answer.json()).channels.chat.users);
	} catch {
		onlineLine.textContent = "who is online: unknown for now";
		return;
	}
	for (const e of pending) applyPresence(e);
	pending = [];
	showOnline();
}

function applyPresence(e) {
	if (online === null) {
		pending.push(e);
		return;
	}
	if (e.type === "join") online.add(e.user);
	else online.delete(e.user);
	showOnline();
}

function showOnline() {
	const names = [...online].sort();
	onlineLine.dataset.users = names.join(",");
	onlineLine.textContent = names.length > 0 ? "online: " + names.join(", ") : "online: nobody with a name (open /?name=you)";
}

function connect() {
	setStatus("connecting", "connecting to " + url + " …");
	socket = new WebSocket(url + resume + who, "redis_ws.v1");
	socket.onopen = () => {
		failures = 0;
		setStatus("open", "connected to " + url);
	};
	socket.onmessage = (event) => {
		const m = JSON.parse(event.data);
		// Recorded messages and "subscribed" carry a position; a message
		// published straight to Redis (redis-cli publish) does not.
		if (m.epoch !== undefined && m.offset !== undefined) resume = `?since=${m.epoch}:${m.offset}`;
		if (m.type === "subscribed") {
			// recovered is false when the history no longer holds all that
			// was sent while this page was away: it goes on from now.
			if (m.recovered === false) show("Reconnected: some messages may have been missed.", "notice");
			askOnline();
			return;
		}
		if (m.type === "join" || m.type === "leave") {
			applyPresence(m);
			return;
		}
		if (m.type === "presence_reset") {
			// Redis was out of reach: events may have been missed.
			askOnline();
			return;
		}
		// A binary message comes as data_base64.
		show(m.data ?? `[${atob(m.data_base64).length} bytes of binary]`);
	};
	socket.onclose = (event) => {
		// Exponential backoff: 0.5 s, 1 s, 2 s … up to 10 s, each delay
		// picked between half and all of that, so that the clients of a
		// node that went away do not all come back at the same instant.
		const ceiling = Math.min(maxDelay, minDelay * 2 ** Math.min(failures, 5));
		const delay = ceiling / 2 + Math.random() * ceiling / 2;
		failures++;
		setStatus("closed", `closed (${event.code}), reconnecting in ${(delay / 1000).toFixed(1)} s`);
		setTimeout(connect, delay);
	};
}

form.addEventListener("submit", (event) => {
	event.preventDefault();
	if (socket.readyState !== WebSocket.OPEN || input.value === "") return;
	socket.send(input.value);
	input.value = "";
	input.focus();
});

connect();
