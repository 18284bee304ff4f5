// The commands of redis_ws.v2 against real nodes: subscribe at run time,
// acknowledged publishes, refusals with their codes, presence, unsubscribe,
// resume of a run-time channel. Each test is skipped while the server
// answers redis_ws.v1 (it has no commands).
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { connect } from "../index.js";
import { startCluster, waitFor, post } from "./harness.js";

const routes = (port) => `
	redis_ws /ws chat {
		redis redis://127.0.0.1:${port}
		history 1000 1h
		allow subscribe room:*
		allow publish room:*
		max_message_size 1KiB
		presence {
			user {http.request.uri.query.name}
		}
	}`;

/** A cluster and a connected client of it, or null when the server has no commands. */
async function setup(t, policy) {
  const cl = await startCluster(t, routes, policy);
  const open = (name = "") => {
    const client = connect(`${cl.lb.ws}/ws?name=${name}`, { WebSocket, minDelay: 100, maxDelay: 1000 });
    t.after(() => client.close());
    return waitFor("the connection", () => client.state === "connected" && client).then(() => client);
  };
  const first = await open("alice");
  if (first.protocol !== "redis_ws.v2") {
    t.skip(`the server answers ${first.protocol}: no commands yet`);
    return null;
  }
  return { ...cl, open, first };
}

const texts = (sub) => {
  const got = [];
  sub.on("message", (m) => got.push(m.data));
  return got;
};

test("subscribe at run time; publish is acknowledged with its position; rewind replays", async (t) => {
  const s = await setup(t);
  if (!s) return;
  const room = s.first.subscribe("room:a");
  const got = texts(room);
  await room.ready();
  const acks = [];
  for (const m of ["one", "two", "three"]) acks.push(await s.first.publish("room:a", m));
  assert.deepEqual(acks.map((a) => a.offset), [1, 2, 3]);
  assert.ok(acks.every((a) => a.epoch === acks[0].epoch && a.channel === "room:a"));
  await waitFor("the 3 messages", () => got.length === 3);
  assert.deepEqual(got, ["one", "two", "three"]);

  const other = await s.open("bob");
  const late = other.subscribe("room:a", { rewind: 2 });
  const lateGot = texts(late);
  await late.ready();
  await s.first.publish("room:a", "four");
  await waitFor("the replay and the live one", () => lateGot.length === 3);
  assert.deepEqual(lateGot, ["two", "three", "four"]);
});

test("refusals come with their code: forbidden, bad_request; a refused subscribe drops the channel", async (t) => {
  const s = await setup(t);
  if (!s) return;
  await assert.rejects(s.first.publish("secret", "x"), { code: "forbidden", channel: "secret" });
  const sub = s.first.subscribe("secret");
  await assert.rejects(sub.ready(), { code: "forbidden" });
  assert.equal(s.first.getSubscription("secret"), undefined);
  const bad = s.first.subscribe("room:b", { since: "not a position" });
  await assert.rejects(bad.ready(), { code: "bad_request" });
  const tokened = s.first.subscribe("team:red", { getToken: (channel) => `not a token for ${channel}` });
  await assert.rejects(tokened.ready(), { code: "invalid_token", channel: "team:red" });
  await assert.rejects(s.first.presence("secret"), { code: "forbidden" });
  assert.equal(s.first.state, "connected");
});

test("subscribing to the route's own channel is no error: it is the route's subscription", async (t) => {
  const cl = await startCluster(t, routes);
  const client = connect(`${cl.lb.ws}/ws`, { WebSocket });
  t.after(() => client.close());
  const errors = [];
  const chat = client.subscribe("chat"); // before the connection opens
  chat.on("error", (err) => errors.push(err));
  await chat.ready();
  if (client.protocol !== "redis_ws.v2") return t.skip(`the server answers ${client.protocol}: no commands yet`);
  await client.subscribe("room:x").ready(); // after the answer to chat's subscribe
  assert.equal(chat.route, true);
  assert.deepEqual(errors, []);
  assert.equal(await post(cl.nodes[0].base + "/ws", "to chat"), 200);
  await waitFor("the message", () => chat.position?.offset === 1);
});

test("presence: who is in a run-time channel, and join events", async (t) => {
  const s = await setup(t);
  if (!s) return;
  const mine = s.first.subscribe("room:p");
  const joins = [];
  mine.on("join", (ev) => joins.push(ev.user));
  await mine.ready();
  const bob = await s.open("bob");
  await bob.subscribe("room:p").ready();
  await waitFor("bob's join", () => joins.includes("bob"));
  assert.deepEqual(await mine.presence(), ["alice", "bob"]);
});

test("unsubscribe: the answer, then no message of the channel", async (t) => {
  const s = await setup(t);
  if (!s) return;
  const room = s.first.subscribe("room:u");
  const got = texts(room);
  await room.ready();
  await s.first.publish("room:u", "kept");
  await waitFor("the message", () => got.length === 1);
  await room.unsubscribe();
  const chat = texts(s.first.getSubscription("chat"));
  await s.first.publish("room:u", "not for us");
  await post(s.nodes[1].base + "/ws", "marker"); // chat: comes after, on the same connection
  await waitFor("the marker", () => chat.length === 1);
  assert.deepEqual(got, ["kept"]);
});

test("a run-time channel is resumed after its node is killed: every message once, in order", async (t) => {
  const s = await setup(t, "first");
  if (!s) return;
  const room = s.first.subscribe("room:r");
  const got = texts(room);
  const subscribed = [];
  room.on("subscribed", (ev) => subscribed.push(ev));
  await room.ready();
  const publisher = connect(s.nodes[1].ws + "/ws", { WebSocket });
  t.after(() => publisher.close());
  await waitFor("the publisher", () => publisher.state === "connected");
  const send = async (prefix) => {
    for (let i = 0; i < 5; i++) await publisher.publish("room:r", `${prefix} ${i}`);
  };
  await send("before");
  await waitFor("5 messages", () => got.length === 5);
  await s.c.kill(s.nodes[0].proc);
  await send("during");
  await waitFor("the resume", () => subscribed.length === 2);
  await send("after");
  await waitFor("15 messages", () => got.length >= 15);
  const want = ["before", "during", "after"].flatMap((p) => [0, 1, 2, 3, 4].map((i) => `${p} ${i}`));
  assert.deepEqual(got, want);
  assert.equal(subscribed[1].recovered, true);
});

test("a message over max_message_size: closed with 1009, and the client stops", async (t) => {
  const s = await setup(t);
  if (!s) return;
  const closed = new Promise((ok) => s.first.once("closed", ok));
  await assert.rejects(s.first.publish("room:a", "x".repeat(2048)), { code: "disconnected" });
  assert.equal((await closed).code, 1009);
  assert.equal(s.first.state, "closed");
});
