// The chat, read-only: one EventSource on /ws (the chat route, with history)
// of the host that served this page, and one event per message. When the
// stream breaks (its node stopped), the browser reconnects by itself after a
// few seconds, through any node, and sends Last-Event-ID: the id of the last
// event it got. The node sends what came after it first, so the page misses
// nothing and shows nothing twice, without any code of its own for that.
"use strict";

const statusLine = document.getElementById("status");
const list = document.getElementById("messages");
const maxShown = 500; // older messages are removed so a tab left open stays light

let opens = 0; // the first connection, then one per reconnection
const feed = new EventSource("ws"); // relative to the page: /ws

function setStatus(state, text) {
	statusLine.dataset.state = state;
	statusLine.textContent = text;
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

feed.onopen = () => {
	opens++;
	setStatus("open", "connected to " + feed.url + (opens > 1 ? " (reconnected)" : ""));
};
feed.onerror = () => {
	// CONNECTING: the browser tries again by itself. CLOSED: it gave up
	// (the node refused the stream), and only reloading the page retries.
	const again = feed.readyState === EventSource.CONNECTING;
	setStatus("closed", again ? "disconnected, reconnecting…" : "closed: reload the page to try again");
};
feed.onmessage = (event) => show(event.data);
// A binary message, and text that an event cannot carry as it is (with a
// carriage return), comes as event: binary, in base64.
feed.addEventListener("binary", (event) => {
	const bytes = Uint8Array.from(atob(event.data), (c) => c.charCodeAt(0));
	try {
		show(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes));
	} catch {
		show(`[${bytes.length} bytes of binary]`); // as the chat page shows it
	}
});
// The history no longer held all that came while the page was away: the
// stream goes on with the live messages. data: {"channel","epoch","offset"}.
feed.addEventListener("reset", () => show("Reconnected: some messages may have been missed.", "notice"));
