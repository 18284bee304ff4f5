// The test harness: real processes. A redis-server on a free port, Caddy
// nodes built from this repository (go build ./cmd/caddy, once per run, or
// $CADDY_BIN), a Caddy balancer in front of them. Every wait polls a
// condition with a deadline.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createHmac } from "node:crypto";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Polls cond until it is truthy, or throws after ms with what. */
export async function waitFor(what, cond, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const given = new Set();

// freePort is a port free on every address (the example Caddyfiles listen on
// all), never one it gave before in this process: a port just closed may be
// handed out again at once, before the first taker binds it.
export async function freePort() {
  for (;;) {
    const port = await new Promise((ok, fail) => {
      const srv = createServer();
      srv.on("error", fail);
      srv.listen(0, () => {
        const { port } = srv.address();
        srv.close(() => ok(port));
      });
    });
    if (!given.has(port)) {
      given.add(port);
      return port;
    }
  }
}

function listening(port) {
  return new Promise((ok) => {
    const s = tcpConnect(port, "127.0.0.1");
    s.on("connect", () => (s.destroy(), ok(true)));
    s.on("error", () => ok(false));
  });
}

let built;

// caddy is the Caddy binary with this module: $CADDY_BIN, or one built from
// the repository once per test process (and removed when it exits).
function caddy() {
  if (process.env.CADDY_BIN) return process.env.CADDY_BIN;
  if (!built) {
    const dir = mkdtempSync(join(tmpdir(), "redis-ws-js-caddy-"));
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    built = join(dir, "caddy");
    execFileSync("go", ["build", "-o", built, "./cmd/caddy"], { cwd: repoRoot, stdio: "inherit" });
  }
  return built;
}

// A Cluster owns every process and directory a test file starts; stop()
// ends them all.
export class Cluster {
  #procs = new Set();
  dir = mkdtempSync(join(tmpdir(), "redis-ws-js-"));


  #spawn(name, cmd, args, env = {}) {
    const p = spawn(cmd, args, {
      env: { ...process.env, XDG_DATA_HOME: join(this.dir, name), XDG_CONFIG_HOME: join(this.dir, name), ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    p.log = "";
    p.stderr.on("data", (b) => (p.log = (p.log + b).slice(-20000)));
    this.#procs.add(p);
    p.on("exit", () => this.#procs.delete(p));
    return p;
  }

  async redis() {
    const port = await freePort();
    const proc = this.#spawn("redis", "redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", this.dir]);
    await waitFor(`redis-server on ${port}`, () => listening(port));
    return { port, proc, cli: (...args) => execFileSync("redis-cli", ["-p", String(port), ...args], { encoding: "utf8" }) };
  }

  /**
   * A Caddy process running caddyfile (with {$PORT} its port, and env);
   * resolves once /health answers.
   */
  async node(name, caddyfile, env = {}) {
    const port = await freePort();
    const file = join(this.dir, `${name}.caddyfile`);
    writeFileSync(file, caddyfile);
    const proc = this.#spawn(name, caddy(), ["run", "--config", file, "--adapter", "caddyfile"], { ...env, PORT: String(port) });
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`${name} on ${port}`, async () => {
      if (proc.exitCode !== null) throw new Error(`${name} exited: ${proc.log}`);
      return (await fetch(base + "/health").catch(() => null))?.ok;
    });
    return { name, port, proc, base, ws: `ws://127.0.0.1:${port}` };
  }

  /**
   * A balancer in front of nodes, with the cluster example's settings but
   * its policy: "first" sends every connection to the first node that is up,
   * so that a test knows which node to kill.
   */
  balancer(nodes, policy = "least_conn") {
    const ups = nodes.map((n) => `127.0.0.1:${n.port}`).join(" ");
    return this.node("lb", `{\n\tadmin off\n\tdefault_bind 127.0.0.1\n}\n:{$PORT} {\n\treverse_proxy ${ups} {\n\t\tlb_policy ${policy}\n\t\tlb_try_duration 5s\n\t\tfail_duration 10s\n\t\thealth_uri /health\n\t\thealth_interval 1s\n\t}\n}\n`);
  }

  kill(p, signal = "SIGKILL") {
    p.kill(signal);
    return waitFor("the process to exit", () => p.exitCode !== null || p.signalCode !== null);
  }

  async stop() {
    for (const p of this.#procs) p.kill("SIGKILL");
    await waitFor("every process to exit", () => this.#procs.size === 0);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A node's Caddyfile: a site on {$PORT} with /health and the given directives. */
export function site(directives) {
  return `{\n\tadmin off\n\tdefault_bind 127.0.0.1\n}\n:{$PORT} {\n${directives}\n\trespond /health 200\n}\n`;
}

export const SECRET = "0123456789abcdef0123456789abcdef-test";

/** An HS256 JWT of claims, signed with SECRET (or secret). */
export function jwt(claims, secret = SECRET) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/** POSTs data to url (a route publishes it); resolves with the status. */
export async function post(url, data) {
  const res = await fetch(url, { method: "POST", body: data });
  await res.text();
  return res.status;
}

/**
 * Redis, two nodes serving the site directives routes(redisPort) and a
 * balancer with policy, all stopped when the test t ends.
 */
export async function startCluster(t, routes, policy) {
  const c = new Cluster();
  t.after(() => c.stop());
  const redis = await c.redis();
  const nodes = [await c.node("node1", site(routes(redis.port))), await c.node("node2", site(routes(redis.port)))];
  const lb = await c.balancer(nodes, policy);
  return { c, redis, nodes, lb };
}
