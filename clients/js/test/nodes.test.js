// The client against real processes: redis-server, two Caddy nodes built
// from this repository and a balancer, started anew for each test. What
// every server gives (the route's own channels, resume through the URL,
// tokens) is here; the commands of redis_ws.v2 are in commands.test.js.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { connect } from "../index.js";
import { startCluster, waitFor, post, jwt, SECRET } from "./harness.js";

const routes = (port) => `
	redis_ws /ws chat {
		redis redis://127.0.0.1:${port}
		history 1000 1h
	}
	route /secure {
		redis_ws_token {
			secret ${SECRET}
		}
		redis_ws user:{http.auth.user.id} {
			redis redis://127.0.0.1:${port}
			history 100 1h
		}
	}`;

const cluster = (t, policy) => startCluster(t, routes, policy);

/** The data of a client's messages, every channel, in order. */
function collect(client) {
  const got = [];
  client.on("message", (m) => got.push(m.data));
  return got;
}

const numbered = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix} ${i}`);

test("connects, follows the route's channel and gets its messages from every node", async (t) => {
  const { nodes, lb } = await cluster(t);
  const client = connect(lb.ws + "/ws", { WebSocket });
  t.after(() => client.close());
  const subs = [];
  client.on("subscription", (s) => subs.push(s.channel));
  const got = collect(client);
  await waitFor("the route's channel", () => client.getSubscription("chat")?.state === "subscribed");
  assert.ok(["redis_ws.v1", "redis_ws.v2"].includes(client.protocol), client.protocol);
  assert.deepEqual(subs, ["chat"]);
  assert.equal(await post(nodes[0].base + "/ws", "one"), 200);
  assert.equal(await post(nodes[1].base + "/ws", "two"), 200);
  await waitFor("both messages", () => got.length === 2);
  assert.deepEqual(got, ["one", "two"]);
  assert.match(client.getSubscription("chat").since, /^[A-Za-z0-9_-]+:2$/);
});

test("its node killed, it reconnects through the balancer and resumes: every message once, in order", async (t) => {
  const { c, nodes, lb } = await cluster(t, "first");
  const client = connect(lb.ws + "/ws?rewind=0", { WebSocket, minDelay: 100, maxDelay: 1000 });
  t.after(() => client.close());
  const got = collect(client);
  const subscribed = [];
  client.on("subscription", (s) => s.on("subscribed", (ev) => subscribed.push(ev)));
  await waitFor("the route's channel", () => subscribed.length === 1);
  for (const m of numbered("before", 5)) await post(nodes[1].base + "/ws", m);
  await waitFor("5 messages", () => got.length === 5);

  const down = new Promise((ok) => client.once("disconnected", ok));
  await c.kill(nodes[0].proc); // "first": the client is on node1
  const info = await down;
  assert.equal(info.code, 1006);
  for (const m of numbered("during", 5)) await post(nodes[1].base + "/ws", m);
  await waitFor("the second subscribed frame", () => subscribed.length === 2);
  for (const m of numbered("after", 5)) await post(nodes[1].base + "/ws", m);
  await waitFor("15 messages", () => got.length >= 15);
  assert.deepEqual(got, [...numbered("before", 5), ...numbered("during", 5), ...numbered("after", 5)]);
  assert.equal(subscribed[1].recovered, true);
  assert.equal(client.state, "connected");
});

test("when the history is gone it says so (unrecovered) and goes on live", async (t) => {
  const { c, redis, nodes, lb } = await cluster(t, "first");
  const client = connect(lb.ws + "/ws", { WebSocket, minDelay: 100, maxDelay: 1000 });
  t.after(() => client.close());
  const unrecovered = [];
  client.on("unrecovered", (ev) => unrecovered.push(ev));
  const got = collect(client);
  await waitFor("the route's channel", () => client.getSubscription("chat")?.state === "subscribed");
  await post(nodes[1].base + "/ws", "old");
  await waitFor("the message", () => got.length === 1);
  redis.cli("FLUSHALL");
  await c.kill(nodes[0].proc);
  await waitFor("unrecovered", () => unrecovered.length === 1);
  assert.deepEqual(unrecovered, [{ channel: "chat", reason: "trimmed" }]);
  await post(nodes[1].base + "/ws", "new");
  await waitFor("the live message", () => got.length === 2);
  assert.deepEqual(got, ["old", "new"]);
});

test("a token: sent as a subprotocol, refreshed before it expires, asked for again after a refusal", async (t) => {
  const { nodes, lb } = await cluster(t);
  const tokens = [jwt({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 60 }, "not the secret, so refused with 401")];
  const getToken = () => {
    tokens.push(jwt({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 3 }));
    return tokens.at(-1);
  };
  const client = connect(lb.ws + "/secure", { WebSocket, token: tokens[0], getToken, minDelay: 50, maxDelay: 200 });
  t.after(() => client.close());
  const got = collect(client);
  await waitFor("the user's channel", () => client.getSubscription("user:alice")?.state === "subscribed");
  assert.equal(tokens.length, 2, "one refusal, one fresh token");
  // The token lives 3 s: a fresh one is asked for before it expires, and
  // the connection goes on with it (refreshed, or reconnected with it).
  await waitFor("a refresh", () => tokens.length >= 3, 10000);
  await waitFor("the connection", () => client.state === "connected" && client.getSubscription("user:alice").state === "subscribed");
  const res = await fetch(nodes[0].base + "/secure", { method: "POST", body: "for alice", headers: { Authorization: "Bearer " + tokens.at(-1) } });
  assert.equal(res.status, 200);
  await waitFor("the message", () => got.includes("for alice"));
});

test("a refresh the server takes keeps the connection open past the first token's exp", async (t) => {
  const { nodes, lb } = await cluster(t);
  const firstExp = Math.floor(Date.now() / 1000) + 3;
  const tokens = [jwt({ sub: "alice", exp: firstExp })];
  const getToken = () => {
    tokens.push(jwt({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 3 }));
    return tokens.at(-1);
  };
  const client = connect(lb.ws + "/secure", { WebSocket, token: tokens[0], getToken });
  t.after(() => client.close());
  const drops = [];
  const errors = [];
  client.on("disconnected", (info) => drops.push(info));
  client.on("error", (err) => errors.push(err));
  const got = collect(client);
  await waitFor("the user's channel", () => client.getSubscription("user:alice")?.state === "subscribed");
  assert.equal(client.protocol, "redis_ws.v2");
  // The first token is closed on at firstExp (4003) unless refreshed.
  await waitFor("past the first exp, refreshed", () => tokens.length >= 2 && Date.now() > (firstExp + 1) * 1000, 10000);
  assert.deepEqual(drops, []);
  assert.deepEqual(errors, []);
  assert.equal(client.state, "connected");
  const res = await fetch(nodes[0].base + "/secure", { method: "POST", body: "still here", headers: { Authorization: "Bearer " + tokens.at(-1) } });
  assert.equal(res.status, 200);
  await waitFor("the message", () => got.includes("still here"));
});

test("a channel whose token expired: subscribed again from its last position with a fresh one, or dropped with token_expired", async (t) => {
  const { redis, lb } = await cluster(t);
  const user = jwt({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 3600 });
  const client = connect(lb.ws + "/secure", { WebSocket, token: user });
  t.after(() => client.close());
  await waitFor("the connection", () => client.state === "connected");
  if (client.protocol !== "redis_ws.v2") return t.skip(`the server answers ${client.protocol}: no commands`);
  // Channel tokens that live 2 to 3 s (exp is in whole seconds).
  const grant = (channel) => jwt({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 3, redis_ws: { subscribe: [channel] } });
  const asked = [];
  const renewed = client.subscribe("secret:r", { getToken: (ch) => (asked.push(ch), grant(ch)) });
  const fixed = client.subscribe("secret:f", { token: grant("secret:f") });
  const got = [];
  renewed.on("message", (m) => got.push(m.data));
  const errors = [];
  fixed.on("error", (err) => errors.push(err));
  await Promise.all([renewed.ready(), fixed.ready()]);
  redis.cli("publish", "secret:r", "before");
  await waitFor("the first message", () => got.includes("before"));

  await waitFor("secret:f dropped", () => errors.length === 1, 10000);
  assert.equal(errors[0].code, "token_expired");
  assert.equal(errors[0].channel, "secret:f");
  assert.equal(fixed.state, "unsubscribed");
  assert.equal(client.getSubscription("secret:f"), undefined);
  await waitFor("secret:r subscribed again with a fresh token", () => asked.length >= 2 && renewed.state === "subscribed", 10000);
  assert.equal(client.state, "connected");
  redis.cli("publish", "secret:r", "after");
  await waitFor("a message after the renewal", () => got.includes("after"));
  assert.deepEqual(got.slice(0, 2), ["before", "after"]);
});
