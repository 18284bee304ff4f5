// The client in Chromium: loaded as an ES module from a page that Caddy
// serves, with the browser's own WebSocket, through the balancer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startCluster, waitFor, post } from "./harness.js";
import { startChromium } from "./chromium.js";

const clientDir = fileURLToPath(new URL("..", import.meta.url));
const routes = (port) => `
	redis_ws /ws chat {
		redis redis://127.0.0.1:${port}
		history 1000 1h
	}
	handle_path /client/* {
		root * ${clientDir}
		file_server
	}
	root * ${clientDir}test/page
	file_server`;

test("in Chromium: connects, gets text and binary messages, and reconnects with resume after its node is killed", async (t) => {
  const { c, nodes, lb } = await startCluster(t, routes, "first");
  const browser = await startChromium();
  t.after(() => browser.stop());
  const page = await browser.open(lb.base + "/");
  await waitFor("the page's connection", () => page("window.clientTest?.states.includes('connected')"));
  await waitFor("the route's channel", () => page("client.getSubscription('chat')?.state === 'subscribed'"));
  assert.ok(["redis_ws.v1", "redis_ws.v2"].includes(await page("clientTest.protocol")));
  assert.equal(await post(nodes[1].base + "/ws", "hello"), 200);
  const res = await fetch(nodes[1].base + "/ws", { method: "POST", body: new Uint8Array([0, 255]), headers: { "Content-Type": "application/octet-stream" } });
  assert.equal(res.status, 200);
  await waitFor("2 messages", () => page("clientTest.messages.length === 2"));

  await c.kill(nodes[0].proc); // "first": the page is on node1
  await post(nodes[1].base + "/ws", "while away");
  await waitFor("the reconnect", () => page("clientTest.states.filter((s) => s === 'connected').length === 2"));
  await post(nodes[1].base + "/ws", "back");
  await waitFor("4 messages", () => page("clientTest.messages.length === 4"));
  assert.deepEqual(await page("clientTest.messages"), ["hello", [0, 255], "while away", "back"]);
});
