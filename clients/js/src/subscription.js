import { Emitter } from "./emitter.js";
import { fromBase64 } from "./base64.js";
import { RedisWsError } from "./errors.js";

// A Subscription is one channel the client follows, across reconnects. It
// remembers the position of the last message it delivered (or of its
// subscribed frame), so that the client resumes it from there. Events:
// subscribed, unrecovered, message, join, leave, presence_reset, error.
export class Subscription extends Emitter {
  #client;
  #options;
  #resumeSent = false;

  constructor(client, channel, options = {}, route = false) {
    super();
    this.#client = client;
    this.#options = options;
    this.channel = channel;
    // route: the route's own channel, subscribed by the server when the
    // connection opens (and resumed through the URL), not by a command.
    this.route = route;
    // pending (waiting for a connection), subscribing, subscribed, or
    // unsubscribed (for good; see unsubscribe).
    this.state = "pending";
    // The last position seen, {epoch, offset}, or null when the channel has
    // no history or nothing was seen yet.
    this.position = null;
  }

  /** The since of the next (re)subscribe, or undefined. */
  get since() {
    return this.position ? `${this.position.epoch}:${this.position.offset}` : undefined;
  }

  // _renewable: a fresh token can be asked for (getToken), so a channel
  // whose token expired is subscribed again rather than dropped.
  get _renewable() {
    return typeof this.#options.getToken === "function";
  }

  /** Resolves with the subscribed event once the channel is subscribed. */
  ready() {
    if (this.state === "subscribed") return Promise.resolve({ channel: this.channel, position: this.position });
    if (this.state === "unsubscribed") {
      return Promise.reject(new RedisWsError("not_subscribed", "unsubscribed, or the subscribe was refused", this.channel));
    }
    return new Promise((resolve, reject) => {
      const offOk = this.once("subscribed", (ev) => {
        offErr();
        resolve(ev);
      });
      const offErr = this.once("error", (err) => {
        offOk();
        reject(err);
      });
    });
  }

  /** Who is connected to the channel (routes with presence). */
  presence() {
    return this.#client.presence(this.channel);
  }

  /** Publishes to the channel; see Client.publish. */
  publish(data) {
    return this.#client.publish(this.channel, data);
  }

  /** Stops following the channel; resolves when the server confirmed. */
  unsubscribe() {
    return this.#client._unsubscribe(this);
  }

  // The members of the subscribe command that (re)subscribes the channel:
  // its last position when it has one, else what the application asked for
  // the first time.
  async _command() {
    const cmd = { cmd: "subscribe", channel: this.channel };
    if (this.position) cmd.since = this.since;
    else if (!this.#resumeSent && this.#options.since) cmd.since = this.#options.since;
    else if (!this.#resumeSent && this.#options.rewind) cmd.rewind = this.#options.rewind;
    const token = this.#options.getToken ? await this.#options.getToken(this.channel) : this.#options.token;
    if (token) cmd.token = token;
    return cmd;
  }

  _subscribed(frame) {
    this.#resumeSent = true;
    this.state = "subscribed";
    // A recovered resume keeps its since: the frame's position is the
    // channel's latest, and the replayed messages follow it.
    if (frame.recovered !== true) {
      this.position = frame.epoch !== undefined ? { epoch: frame.epoch, offset: frame.offset } : null;
    }
    const ev = { channel: this.channel, position: this.position };
    if (frame.recovered !== undefined) ev.recovered = frame.recovered;
    this.emit("subscribed", ev);
    if (frame.recovered === false) this._unrecovered("trimmed");
  }

  // _unrecovered tells the application that messages may have been missed:
  // reload the channel's state. why: "trimmed" (the history no longer holds
  // them) or "gap" (the server closed with 4001).
  _unrecovered(why) {
    this.emit("unrecovered", { channel: this.channel, reason: why });
  }

  _message(frame) {
    const msg = { channel: this.channel, binary: frame.data_base64 !== undefined };
    msg.data = msg.binary ? fromBase64(frame.data_base64) : frame.data;
    if (frame.epoch !== undefined) {
      msg.epoch = frame.epoch;
      msg.offset = frame.offset;
      this.position = { epoch: frame.epoch, offset: frame.offset };
    }
    this.emit("message", msg);
    return msg;
  }

  _disconnected() {
    if (this.state !== "unsubscribed") this.state = "pending";
  }
}
