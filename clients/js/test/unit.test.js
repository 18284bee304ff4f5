// The client against a FakeWebSocket: the rules that a real server cannot be
// made to show on demand (each close code, timeouts, the backoff's bounds).
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { connect, ErrorCodes } from "../index.js";
import { backoff } from "../src/backoff.js";
import { tokenExpiry } from "../src/token.js";
import { FakeWebSocket as WS } from "./fakews.js";
import { waitFor, jwt } from "./harness.js";

const opts = { WebSocket: WS, minDelay: 1, maxDelay: 5 };
beforeEach(() => WS.reset());

async function opened(options = {}, protocol = "redis_ws.v2") {
  const client = connect("ws://example.test/ws?rewind=5", { ...opts, ...options });
  const ws = await waitFor("a socket", () => WS.last());
  ws.open(protocol);
  return { client, ws };
}

test("backoff: full jitter, bounded by min*2^n and by max", () => {
  for (let n = 0; n < 40; n++) {
    assert.equal(backoff(n, 500, 20000, () => 0), 0);
    const top = backoff(n, 500, 20000, () => 0.999999);
    assert.ok(top < Math.min(20000, 500 * 2 ** n), `attempt ${n}: ${top}`);
    assert.ok(top >= Math.min(20000, 500 * 2 ** n) - 1);
  }
});

test("tokenExpiry reads exp and ignores what is not a JWT", () => {
  assert.equal(tokenExpiry(jwt({ sub: "a", exp: 1790000000 })), 1790000000);
  for (const bad of ["", "abc", "a.b.c", "a.%%%.c", jwt({ sub: "a" }), undefined, 42]) {
    assert.equal(tokenExpiry(bad), undefined);
  }
});

test("offers redis_ws.v2, redis_ws.v1 and the token as a subprotocol", async () => {
  const token = jwt({ sub: "alice" });
  const { client, ws } = await opened({ token });
  assert.deepEqual(ws.protocols, ["redis_ws.v2", "redis_ws.v1", "redis_ws.token." + token]);
  assert.equal(client.protocol, "redis_ws.v2");
  client.close();
});

test("subscribe, message, publish ack and error codes", async () => {
  const { client, ws } = await opened();
  const sub = client.subscribe("room:a", { rewind: 10 });
  const cmd = await waitFor("the subscribe", () => ws.commands.find((c) => c.cmd === "subscribe"));
  assert.deepEqual(cmd, { id: cmd.id, cmd: "subscribe", channel: "room:a", rewind: 10 });
  const got = [];
  sub.on("message", (m) => got.push(m));
  ws.frame({ type: "subscribed", id: cmd.id, channel: "room:a", offset: 3, epoch: "e1" });
  await sub.ready();
  ws.frame({ channel: "room:a", offset: 4, epoch: "e1", data: "hi" });
  ws.frame({ channel: "room:a", data_base64: "/wAB" });
  assert.equal(got[0].data, "hi");
  assert.deepEqual([...got[1].data], [255, 0, 1]);
  assert.equal(got[1].binary, true);
  assert.equal(sub.since, "e1:4");

  const ack = client.publish("room:a", "yo");
  const p = ws.commands.at(-1);
  assert.deepEqual(p, { id: p.id, cmd: "publish", channel: "room:a", data: "yo" });
  ws.frame({ type: "published", id: p.id, channel: "room:a", offset: 5, epoch: "e1" });
  assert.deepEqual(await ack, { channel: "room:a", offset: 5, epoch: "e1" });

  const refused = client.publish("room:b", new Uint8Array([1, 2]));
  const q = ws.commands.at(-1);
  assert.equal(q.data_base64, "AQI=");
  ws.frame({ type: "error", id: q.id, channel: "room:b", code: "forbidden", reason: "no" });
  await assert.rejects(refused, { code: "forbidden", channel: "room:b" });
  client.close();
});

test("a refused subscribe is an error event and the channel is dropped", async () => {
  const { client, ws } = await opened();
  const sub = client.subscribe("secret");
  const cmd = await waitFor("the subscribe", () => ws.commands.find((c) => c.cmd === "subscribe"));
  ws.frame({ type: "error", id: cmd.id, channel: "secret", code: "forbidden", reason: "not allowed" });
  await assert.rejects(sub.ready(), { code: "forbidden" });
  assert.equal(client.getSubscription("secret"), undefined);
  assert.equal(sub.state, "unsubscribed");
  await assert.rejects(sub.ready(), { code: "not_subscribed" });
  client.close();
});

test("a command times out; pending commands are rejected on disconnect and never sent again", async () => {
  const { client, ws } = await opened({ timeout: 30 });
  await assert.rejects(client.publish("room:a", "lost?"), { code: ErrorCodes.TIMEOUT });
  const pending = client.publish("room:a", "x");
  ws.serverClose(1001, "going away");
  await assert.rejects(pending, { code: ErrorCodes.DISCONNECTED });
  const next = await waitFor("a reconnect", () => WS.all.length === 2 && WS.last());
  next.open();
  assert.ok(!next.commands.some((c) => c.cmd === "publish"), "a publish was sent again");
  client.close();
  await assert.rejects(client.publish("room:a", "z"), { code: ErrorCodes.DISCONNECTED });
});

test("reconnect resumes route channels in the URL and run-time ones with since", async () => {
  const { client, ws } = await opened();
  const unrecovered = [];
  client.on("unrecovered", (ev) => unrecovered.push(ev));
  ws.frame({ type: "subscribed", channel: "chat", offset: 7, epoch: "e1" });
  assert.equal(client.getSubscription("chat").route, true);
  ws.frame({ channel: "chat", offset: 8, epoch: "e1", data: "m" });
  const room = client.subscribe("room:a");
  const cmd = await waitFor("the subscribe", () => ws.commands.find((c) => c.cmd === "subscribe"));
  ws.frame({ type: "subscribed", id: cmd.id, channel: "room:a", offset: 2, epoch: "e2" });
  ws.serverClose(1012, "reload");

  const next = await waitFor("a reconnect", () => WS.all.length === 2 && WS.last());
  const url = new URL(next.url);
  assert.deepEqual(url.searchParams.getAll("since"), ["chat@e1:8"]);
  assert.equal(url.searchParams.get("rewind"), null);
  next.open();
  const again = await waitFor("the resubscribe", () => next.commands.find((c) => c.cmd === "subscribe"));
  assert.deepEqual(again, { id: again.id, cmd: "subscribe", channel: "room:a", since: "e2:2" });
  assert.ok(!next.commands.some((c) => c.channel === "chat"), "the route's channel is resumed by the URL only");
  next.frame({ type: "subscribed", id: again.id, channel: "room:a", offset: 9, epoch: "e3", recovered: false });
  assert.deepEqual(unrecovered, [{ channel: "room:a", reason: "trimmed" }]);
  assert.equal(room.since, "e3:9");
  client.close();
});

test("close codes: 1002, 1007, 1008 and 1009 stop; 4003 needs getToken; 4001 tells unrecovered", async () => {
  for (const code of [1002, 1007, 1008, 1009, 4003]) {
    WS.reset();
    const { client, ws } = await opened();
    const closed = new Promise((ok) => client.on("closed", ok));
    ws.serverClose(code, "bye");
    assert.equal((await closed).code, code);
    assert.equal(client.state, "closed");
    assert.equal(WS.all.length, 1);
  }
  WS.reset();
  let calls = 0;
  const { client, ws } = await opened({ token: jwt({ sub: "a" }), getToken: () => jwt({ sub: "a", n: ++calls }) });
  ws.serverClose(4003, "token expired");
  const next = await waitFor("a reconnect", () => WS.all.length === 2 && WS.last());
  assert.equal(calls, 1);
  assert.equal(next.protocols[2], "redis_ws.token." + jwt({ sub: "a", n: 1 }));
  next.open();
  next.frame({ type: "subscribed", channel: "chat" });
  const gap = new Promise((ok) => client.getSubscription("chat").on("unrecovered", ok));
  next.serverClose(4001, "gap");
  assert.deepEqual(await gap, { channel: "chat", reason: "gap" });
  await waitFor("a reconnect", () => WS.all.length === 3);
  client.close();
});

test("a token is refreshed before it expires; not_enabled reconnects with the fresh one", async () => {
  const exp = () => Math.floor(Date.now() / 1000) + 2;
  let n = 0;
  const getToken = () => jwt({ sub: "a", exp: exp(), n: ++n });
  const { client, ws } = await opened({ token: jwt({ sub: "a", exp: exp() }), getToken, refreshBefore: 60000 });
  const refresh = await waitFor("a refresh", () => ws.commands.find((c) => c.cmd === "refresh"), 5000);
  assert.equal(refresh.token, jwt({ sub: "a", exp: tokenExpiry(refresh.token), n: 1 }));
  ws.frame({ type: "error", id: refresh.id, code: "not_enabled", reason: "no refresh here" });
  const next = await waitFor("a reconnect", () => WS.all.length === 2 && WS.last());
  assert.equal(next.protocols[2], "redis_ws.token." + refresh.token);
  assert.equal(n, 1, "the fresh token is used, not asked for again");
  client.close();
});

test("redis_ws.v1: no commands; the route's channels still arrive", async () => {
  const { client, ws } = await opened({}, "redis_ws.v1");
  await assert.rejects(client.publish("chat", "x"), { code: ErrorCodes.NOT_SUPPORTED });
  const seen = [];
  client.on("subscription", (sub) => sub.on("message", (m) => seen.push(m.data)));
  ws.frame({ type: "subscribed", channel: "chat", offset: 0, epoch: "0" });
  ws.frame({ channel: "chat", offset: 1, epoch: "e", data: "a" });
  assert.deepEqual(seen, ["a"]);
  assert.equal(ws.sent.length, 0);
  client.close();
});

test("hostile frames: not JSON is an error event, unknown ids and channels are ignored, the client goes on", async () => {
  const { client, ws } = await opened();
  const errors = [];
  client.on("error", (err) => errors.push(err));
  const sub = client.subscribe("room:a");
  const cmd = await waitFor("the subscribe", () => ws.commands.find((c) => c.cmd === "subscribe"));
  ws.onmessage({ data: "{not json" });
  ws.onmessage({ data: "" });
  for (const data of ["null", "42", "[]", '"x"']) ws.onmessage({ data });
  ws.frame({ type: "published", id: 999999, channel: "room:a", offset: 1, epoch: "e" });
  ws.frame({ type: "subscribed", id: 424242, channel: "room:zzz", offset: 1, epoch: "e" });
  ws.frame({ channel: "room:zzz", data: "not ours" });
  ws.frame({ type: "join", channel: "room:zzz", user: "mallory" });
  ws.frame({ type: "something new", channel: "room:a" });
  ws.frame({ type: "error", code: "bad_request", reason: "no id" });
  ws.frame({ channel: "room:a", data: "before its subscribed frame" });
  assert.deepEqual(errors.map((e) => e.code), ["bad_frame", "bad_frame", "bad_frame", "bad_frame", "bad_frame", "bad_frame", "bad_request"]);
  assert.equal(client.getSubscription("room:zzz"), undefined);
  const got = [];
  sub.on("message", (m) => got.push(m.data));
  ws.frame({ type: "subscribed", id: cmd.id, channel: "room:a", offset: 0, epoch: "0" });
  ws.frame({ channel: "room:a", offset: 1, epoch: "e", data: "ok" });
  assert.deepEqual(got, ["ok"]);
  assert.equal(client.state, "connected");
  client.close();
});
