// The rooms page of examples/chat (rooms.html) in Chromium, on the cluster
// example as examples/run.sh starts it: examples/cluster/node.caddyfile twice
// and lb.caddyfile in front, each with its own ports.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Cluster, repoRoot, freePort, waitFor, post } from "./harness.js";
import { startChromium } from "./chromium.js";

const example = (f) => readFileSync(join(repoRoot, "examples/cluster", f), "utf8");

async function startExample(t) {
  const c = new Cluster();
  t.after(() => c.stop());
  const redis = await c.redis();
  const env = async () => ({ REDIS_PORT: String(redis.port), CHAT_ROOT: join(repoRoot, "examples/chat"), ADMIN_PORT: String(await freePort()) });
  const nodes = [await c.node("node1", example("node.caddyfile"), await env()), await c.node("node2", example("node.caddyfile"), await env())];
  const lb = await c.node("lb", example("lb.caddyfile"), {
    ADMIN_PORT: String(await freePort()),
    NODE1: `127.0.0.1:${nodes[0].port}`,
    NODE2: `127.0.0.1:${nodes[1].port}`,
  });
  const browser = await startChromium();
  t.after(() => browser.stop());
  return { nodes, lb, browser };
}

// The page's state, as a person would read it.
const read = `(() => ({
  status: document.getElementById("status").textContent,
  rooms: [...document.querySelectorAll("#rooms button")].map((b) => b.textContent),
  current: document.querySelector("#rooms button[aria-current=true]")?.textContent,
  messages: [...document.querySelectorAll("#messages li span")].map((s) => s.textContent),
  online: document.getElementById("online").dataset.users,
}))()`;

const click = (text) => `[...document.querySelectorAll("#rooms button")].find((b) => b.textContent.startsWith(${JSON.stringify(text)})).click()`;
const say = (text) => `document.getElementById("text").value = ${JSON.stringify(text)}; document.querySelector("#send button").click()`;

test("rooms page: the route's own room, chat, on every server", async (t) => {
  const { nodes, lb, browser } = await startExample(t);
  const page = await browser.open(lb.base + "/rooms.html?name=alice");
  await waitFor("the chat room", async () => (await page(read)).rooms.includes("chat"));
  assert.equal(await post(nodes[1].base + "/ws", "hello chat"), 200);
  await page(click("chat"));
  await waitFor("the message", async () => (await page(read)).messages.includes("hello chat"));
});

test("rooms page: rooms on one connection, history on join, who is online", async (t) => {
  const { lb, browser } = await startExample(t);
  const alice = await browser.open(lb.base + "/rooms.html?name=alice");
  await waitFor("the connection", async () => (await alice(read)).status.startsWith("connected"));
  if ((await alice(read)).status !== "connected") { // "connected with redis_ws.v1: …"
    t.skip("the server answers redis_ws.v1: no run-time rooms yet");
    return;
  }
  await waitFor("the rooms", async () => (await alice(read)).rooms.join() === "room:lobby,room:random,chat");
  await alice(say("hi lobby"));
  await waitFor("alice's message", async () => (await alice(read)).messages.includes("hi lobby"));
  await alice(click("room:random"));
  await alice(say("hi random"));

  const bob = await browser.open(lb.base + "/rooms.html?name=bob");
  await waitFor("the lobby's history and who is online", async () => {
    const s = await bob(read);
    return s.current === "room:lobby" && s.messages.includes("hi lobby") && s.online === "alice,bob";
  });
  await waitFor("the unread count", async () => (await bob(read)).rooms.includes("room:random (1)"));
  await alice(click("room:lobby"));
  await bob(say("hi alice"));
  await waitFor("bob's message at alice", async () => (await alice(read)).messages.includes("hi alice"));
});
