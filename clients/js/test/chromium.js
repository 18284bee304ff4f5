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
      // Two lines, the port and the browser's path; read until both are written.
      const lines = readFileSync(join(dir, "DevToolsActivePort"), "utf8").split("\n");
      return lines.length >= 2 && lines[1].startsWith("/devtools/") && lines;
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
      const evaluate = async (expression) => {
        const r = await send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true }, sessionId);
        if (r.exceptionDetails) throw new Error(JSON.stringify(r.exceptionDetails));
        return r.result.value;
      };
      // The tab starts on about:blank: wait until url has loaded.
      await waitFor(`${url} to load`, () =>
        evaluate(`location.href === ${JSON.stringify(url)} && document.readyState === "complete"`).catch(() => false));
      return evaluate;
    },
    log: () => log,
    // stop closes the browser through the protocol, so that its helper
    // processes end with it (a SIGKILL of the main one leaves them behind),
    // then removes its profile.
    async stop() {
      const exited = () => proc.exitCode !== null || proc.signalCode !== null;
      await send("Browser.close").catch(() => {});
      await waitFor("chromium to exit", exited).catch(() => proc.kill("SIGKILL"));
      await waitFor("chromium to exit", exited);
      ws.close();
      rmSync(dir, { recursive: true, force: true, maxRetries: 10 });
    },
  };
}
