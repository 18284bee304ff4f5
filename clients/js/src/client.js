import { Emitter } from "./emitter.js";
import { Subscription } from "./subscription.js";
import { Commands } from "./commands.js";
import { RedisWsError, ErrorCodes } from "./errors.js";
import { backoff } from "./backoff.js";
import { tokenExpiry, refreshDelay } from "./token.js";
import { toBase64 } from "./base64.js";
import { afterClose, CLOSE_GAP } from "./closecodes.js";

export const V2 = "redis_ws.v2";
export const V1 = "redis_ws.v1";
const TOKEN_PREFIX = "redis_ws.token.";

const defaults = {
  timeout: 10000, // ms a command waits for its answer
  minDelay: 500, // ms, the first reconnect's bound
  maxDelay: 20000, // ms, the bound of every later one
  refreshBefore: 60000, // ms before a token's exp to get a fresh one
};

// Client is one WebSocket to a redis_ws route, reconnected and resumed as
// long as the client is not closed. Events: connecting, connected,
// disconnected, closed, subscription (a route channel appeared), message,
// join, leave, unrecovered, error.
export class Client extends Emitter {
  #url;
  #opts;
  #ws = null;
  #token;
  #attempt = 0;
  #timer = null;
  #refreshTimer = null;
  #restart = false; // reconnect at once (a token refresh), not after a backoff
  #needToken; // ask getToken before the next connection
  #cmds = new Commands();
  #subs = new Map();

  constructor(url, options = {}) {
    super();
    this.#url = String(url);
    this.#opts = { ...defaults, ...options };
    this.#opts.WebSocket ??= globalThis.WebSocket;
    if (typeof this.#opts.WebSocket !== "function") {
      throw new TypeError("no WebSocket: pass one as options.WebSocket (in Node 20, the ws package)");
    }
    this.#token = options.token;
    this.#needToken = !options.token;
    // connecting, connected, disconnected (waiting to reconnect) or closed.
    this.state = "connecting";
    // The subprotocol the server chose: redis_ws.v2 (commands) or redis_ws.v1.
    this.protocol = "";
    queueMicrotask(() => this.#open());
  }

  /** Follows channel; returns its Subscription (the same one if followed). */
  subscribe(channel, options = {}) {
    if (typeof channel !== "string" || channel === "") throw new TypeError("a channel is a non-empty string");
    if (options.since && options.rewind) throw new TypeError("since and rewind cannot be combined");
    let sub = this.#subs.get(channel);
    if (sub) return sub;
    sub = new Subscription(this, channel, options);
    this.#subs.set(channel, sub);
    if (this.state === "connected") this.#sendSubscribe(sub);
    return sub;
  }

  /** The Subscription of channel, or undefined. */
  getSubscription(channel) {
    return this.#subs.get(channel);
  }

  /** Every Subscription, the route's own channels included. */
  subscriptions() {
    return [...this.#subs.values()];
  }

  /**
   * Publishes data (a string: text; bytes: binary) to channel. Resolves with
   * {channel, offset, epoch} (no position on a route without history) once
   * the server took it; rejects with a RedisWsError. Never sent again by
   * itself: after a "timeout" or "disconnected" it may or may not be
   * published.
   */
  publish(channel, data) {
    const cmd = { cmd: "publish", channel };
    if (typeof data === "string") cmd.data = data;
    else if (data instanceof ArrayBuffer) cmd.data_base64 = toBase64(new Uint8Array(data));
    else if (ArrayBuffer.isView(data)) cmd.data_base64 = toBase64(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    else return Promise.reject(new TypeError("publish takes a string or bytes"));
    return this.#command(cmd).then((f) => {
      const ack = { channel };
      if (f.epoch !== undefined) Object.assign(ack, { offset: f.offset, epoch: f.epoch });
      return ack;
    });
  }

  /** Who is connected to channel: a list of users (routes with presence). */
  presence(channel) {
    return this.#command({ cmd: "presence", channel }).then((f) => f.users ?? []);
  }

  /** Closes the connection for good: no reconnect; pending commands are rejected. */
  close() {
    if (this.state === "closed") return;
    this.#setClosed({ code: 1000, reason: "closed by the client" });
    this.#ws?.close(1000);
  }

  async _unsubscribe(sub) {
    if (sub.state === "unsubscribed") return;
    sub.state = "unsubscribed";
    if (this.#subs.get(sub.channel) === sub) this.#subs.delete(sub.channel);
    if (this.state !== "connected" || this.protocol !== V2) return;
    await this.#command({ cmd: "unsubscribe", channel: sub.channel });
  }

  #command(cmd) {
    if (this.state !== "connected") {
      return Promise.reject(new RedisWsError(ErrorCodes.DISCONNECTED, "not connected", cmd.channel));
    }
    if (this.protocol !== V2) {
      return Promise.reject(new RedisWsError(ErrorCodes.NOT_SUPPORTED, `the server speaks ${this.protocol || "no subprotocol"}, which has no commands`, cmd.channel));
    }
    const { id, promise } = this.#cmds.start(this.#opts.timeout, { channel: cmd.channel, cmd: cmd.cmd });
    this.#ws.send(JSON.stringify({ id, ...cmd }));
    return promise;
  }

  async #sendSubscribe(sub) {
    if (this.protocol !== V2 || sub.route) return;
    sub.state = "subscribing";
    const ws = this.#ws;
    let cmd;
    try {
      cmd = await sub._command();
    } catch (err) {
      sub.emit("error", err);
      return;
    }
    if (ws !== this.#ws || this.state !== "connected" || sub.state !== "subscribing") return;
    this.#command(cmd).catch((err) => {
      // The route subscribed it itself meanwhile: nothing is wrong.
      if (err.code === "already_subscribed" && sub.route) return;
      // Refused: the channel is dropped. Lost on the way: it is a state the
      // next connection restores, so it stays.
      if (err.code !== ErrorCodes.DISCONNECTED && err.code !== ErrorCodes.TIMEOUT && sub.state !== "unsubscribed") {
        sub.state = "unsubscribed";
        if (this.#subs.get(sub.channel) === sub) this.#subs.delete(sub.channel);
      }
      sub.emit("error", err);
    });
  }

  async #open() {
    if (this.state === "closed") return;
    this.#setState("connecting");
    if (this.#opts.getToken && this.#needToken) {
      try {
        this.#token = await this.#opts.getToken();
      } catch (err) {
        this.emit("error", err);
        return this.#retry({ code: 0, reason: "getToken failed" });
      }
      if (this.state === "closed") return;
    }
    this.#restart = false;
    this.#needToken = true;
    const protocols = [V2, V1];
    if (this.#token) protocols.push(TOKEN_PREFIX + this.#token);
    let ws;
    try {
      ws = new this.#opts.WebSocket(this.#resumeURL(), protocols);
    } catch (err) {
      this.emit("error", err);
      return this.#retry({ code: 0, reason: String(err) });
    }
    this.#ws = ws;
    ws.onopen = () => this.#onOpen(ws);
    ws.onmessage = (ev) => ws === this.#ws && this.#onFrame(ev.data);
    ws.onclose = (ev) => ws === this.#ws && this.#onClose(ev);
    ws.onerror = () => {}; // a close follows, with its code
  }

  // #resumeURL is the URL to (re)connect to: as given the first time; later
  // without its since and rewind, and with since=<channel>@<epoch>:<offset>
  // for each of the route's channels with a position.
  #resumeURL() {
    const routeSubs = [...this.#subs.values()].filter((s) => s.route);
    if (routeSubs.length === 0) return this.#url;
    const url = new URL(this.#url);
    url.searchParams.delete("since");
    url.searchParams.delete("rewind");
    for (const sub of routeSubs) {
      if (sub.position) url.searchParams.append("since", `${sub.channel}@${sub.since}`);
    }
    return url.toString();
  }

  #onOpen(ws) {
    if (ws !== this.#ws || this.state === "closed") return;
    this.#attempt = 0;
    this.protocol = ws.protocol;
    this.#setState("connected", { protocol: ws.protocol });
    for (const sub of this.#subs.values()) this.#sendSubscribe(sub);
    this.#scheduleRefresh();
  }

  #onFrame(data) {
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      f = null;
    }
    if (typeof f !== "object" || f === null || Array.isArray(f)) {
      return this.emit("error", new RedisWsError(ErrorCodes.BAD_FRAME, "a frame that is not a JSON object"));
    }
    const pending = f.id ? this.#cmds.take(f.id) : undefined;
    if (f.type === "error") {
      const err = new RedisWsError(f.code, f.reason, f.channel);
      return pending ? pending.reject(err) : this.emit("error", err);
    }
    if (f.type === "subscribed") this.#onSubscribed(f);
    else if (f.type === "unsubscribed" && !f.id) this.#onDropped(f);
    else if (f.type === "unsubscribed" || f.type === "published" || f.type === "presence" || f.type === "refreshed") {
      // Answers only: their promise has them.
    } else if (f.type === undefined) {
      const sub = this.#subs.get(f.channel);
      if (sub && sub.state === "subscribed") this.emit("message", sub._message(f));
    } else {
      const sub = this.#subs.get(f.channel);
      if (!sub) return;
      const ev = { channel: f.channel };
      if (f.user !== undefined) ev.user = f.user;
      sub.emit(f.type, ev);
      this.emit(f.type, ev);
    }
    pending?.resolve(f);
  }

  #onSubscribed(f) {
    let sub = this.#subs.get(f.channel);
    if (!f.id) {
      // The route's own channel, subscribed by the server at the open.
      if (!sub) {
        sub = new Subscription(this, f.channel, {}, true);
        this.#subs.set(f.channel, sub);
        this.emit("subscription", sub);
      }
      sub.route = true;
    }
    if (!sub || sub.state === "unsubscribed") return;
    sub._subscribed(f);
    if (f.recovered === false) this.emit("unrecovered", { channel: f.channel, reason: "trimmed" });
  }

  // #onDropped: the server left a channel by itself (its token expired). A
  // subscription that can get a fresh token subscribes again from its last
  // position; any other ends, with an error event that says why.
  #onDropped(f) {
    const sub = this.#subs.get(f.channel);
    if (!sub || sub.state === "unsubscribed") return;
    if (sub._renewable) {
      sub.state = "pending";
      return this.#sendSubscribe(sub);
    }
    sub.state = "unsubscribed";
    this.#subs.delete(sub.channel);
    const err = new RedisWsError(f.code, f.reason, f.channel);
    sub.emit("error", err);
    this.emit("error", err);
  }

  #onClose(ev) {
    this.#ws = null;
    clearTimeout(this.#refreshTimer);
    this.#cmds.dropAll(ErrorCodes.DISCONNECTED, `the connection closed (${ev.code})`);
    for (const sub of this.#subs.values()) sub._disconnected();
    if (this.state === "closed") return;
    const info = { code: ev.code, reason: ev.reason };
    const next = afterClose(ev.code);
    if (next === "stop" || (next === "token" && !this.#opts.getToken)) return this.#setClosed(info);
    if (ev.code === CLOSE_GAP) {
      for (const sub of this.#subs.values()) {
        sub.position = null;
        sub._unrecovered("gap");
        this.emit("unrecovered", { channel: sub.channel, reason: "gap" });
      }
    }
    this.#retry(info);
  }

  #retry(info) {
    const delay = this.#restart ? 0 : backoff(this.#attempt++, this.#opts.minDelay, this.#opts.maxDelay);
    this.#setState("disconnected", { ...info, reconnectIn: delay });
    this.#timer = setTimeout(() => this.#open(), delay);
  }

  // #scheduleRefresh gets a fresh token before the connection's expires: a
  // refresh command gives it to the open connection; a server without
  // refresh (not_enabled, or redis_ws.v1) gets a new connection with it.
  #scheduleRefresh() {
    clearTimeout(this.#refreshTimer);
    const exp = tokenExpiry(this.#token);
    if (!this.#opts.getToken || exp === undefined) return;
    this.#refreshTimer = setTimeout(async () => {
      try {
        this.#token = await this.#opts.getToken();
        if (this.state !== "connected") return;
        if (this.protocol !== V2) return this.#reconnectNow();
        await this.#command({ cmd: "refresh", token: this.#token });
        this.#scheduleRefresh();
      } catch (err) {
        if (err.code === "not_enabled" || err.code === "unknown_command") return this.#reconnectNow();
        this.emit("error", err);
      }
    }, refreshDelay(exp, this.#opts.refreshBefore));
  }

  // #reconnectNow replaces the connection at once, resuming every channel.
  #reconnectNow() {
    if (this.state !== "connected") return;
    this.#restart = true;
    this.#needToken = false;
    this.#ws.close(1000, "token refresh");
  }

  #setState(state, info = {}) {
    this.state = state;
    this.emit(state, info);
  }

  #setClosed(info) {
    clearTimeout(this.#timer);
    clearTimeout(this.#refreshTimer);
    this.#cmds.dropAll(ErrorCodes.CLOSED, "the client is closed");
    this.#setState("closed", info);
  }
}

/** Opens a client to url; see Client. */
export function connect(url, options) {
  return new Client(url, options);
}
