// The chat page: one WebSocket to /ws on the host that served this page.
// Everything shown came back through Redis, including what this page sent:
// redis_ws delivers a client's own messages to it, so there is no local echo.
"use strict";

const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
const statusLine = document.getElementById("status");
const list = document.getElementById("messages");
const form = document.getElementById("send");
const input = document.getElementById("text");
const button = form.querySelector("button");

const minDelay = 500; // ms before the first reconnect attempt
const maxDelay = 10000; // ms, the cap of the backoff
const maxShown = 500; // older messages are removed so a tab left open stays light

let socket = null;
let failures = 0; // attempts since the last successful open

function setStatus(state, text) {
	statusLine.dataset.state = state;
	statusLine.textContent = text;
	button.disabled = state !== "open";
}

function show(text) {
	const item = document.createElement("li");
	const time = document.createElement("time");
	const body = document.createElement("span");
	time.textContent = new Date().toLocaleTimeString();
	body.className = "text";
	body.textContent = text; // never innerHTML: messages come from anyone
	item.append(time, body);
	list.append(item);
	while (list.childElementCount > maxShown) list.firstElementChild.remove();
	list.scrollTop = list.scrollHeight;
}

function connect() {
	setStatus("connecting", "connecting to " + url + " …");
	socket = new WebSocket(url);
	socket.binaryType = "arraybuffer";
	socket.onopen = () => {
		failures = 0;
		setStatus("open", "connected to " + url);
	};
	socket.onmessage = (event) => {
		// redis_ws sends what is not valid UTF-8 as a binary frame.
		show(typeof event.data === "string" ? event.data : `[${event.data.byteLength} bytes of binary]`);
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
