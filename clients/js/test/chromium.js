// Headless Chromium driven through the DevTools protocol, with the `ws`
// devDependency as the protocol's WebSocket: no other npm package. Flags as
// the Go browser tests give them (no sandbox: CI runs as root; nothing in
// the background reaches for the network).
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { waitFor } from "./harness.js";

export async function startChromium() {
  const dir = mkdtempSync(join(tmpdir(), "redis-ws-chromium-"));
  const proc = spawn("chromium", [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update",
    "--remote-debugging-port=0", `--user-data-dir=${dir}`, "about:blank",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (b) => (log = (log + b).slice(-8000)));
  const [port, path] = await waitFor("DevToolsActivePort", () => {
    if (proc.exitCode !== null) throw new Error(`chromium exited: ${log}`);
    try {
      return readFileSync(join(dir, "DevToolsActivePort"), "utf8").trim().split("\n");
    } catch {
      return null;
    }
  }, 30000);
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
  await new Promise((ok, fail) => (ws.once("open", ok), ws.once("error", fail)));
  let next = 1;
  const waiting = new Map();
  ws.on("message", (b) => {
    const m = JSON.parse(b);
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    m.error ? w.fail(new Error(JSON.stringify(m.error))) : w.ok(m.result);
  });
  const send = (method, params = {}, sessionId) =>
    new Promise((ok, fail) => {
      const id = next++;
      waiting.set(id, { ok, fail });
      ws.send(JSON.stringify({ id, method, params, sessionId }));
    });
  return {
    /** Opens url in a new tab; returns eval(expression) for that tab. */
    async open(url) {
      const { targetId } = await send("Target.createTarget", { url });
      const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
      return async (expression) => {
        const r = await send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true }, sessionId);
        if (r.exceptionDetails) throw new Error(JSON.stringify(r.exceptionDetails));
        return r.result.value;
      };
    },
    log: () => log,
    async stop() {
      ws.close();
      proc.kill("SIGKILL");
      await waitFor("chromium to exit", () => proc.exitCode !== null || proc.signalCode !== null);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
