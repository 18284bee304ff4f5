import { RedisWsError, ErrorCodes } from "./errors.js";

// Commands holds the commands sent and not answered yet, by id: each is
// answered by the frame with its id, rejected when its timeout passes, or
// rejected when the connection closes (it may or may not have been done:
// nothing is sent again by itself).
export class Commands {
  #next = 1;
  #pending = new Map();

  /** A new id and the promise of its answer, settled by answer or drop. */
  start(timeout, extra = {}) {
    const id = this.#next++;
    let entry;
    const promise = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new RedisWsError(ErrorCodes.TIMEOUT, `no answer within ${timeout} ms`, extra.channel));
      }, timeout);
      entry = { resolve, reject, timer, ...extra };
    });
    this.#pending.set(id, entry);
    return { id, promise };
  }

  /** The pending command of an answer's id, taken out; undefined if none. */
  take(id) {
    const entry = this.#pending.get(id);
    if (entry) {
      clearTimeout(entry.timer);
      this.#pending.delete(id);
    }
    return entry;
  }

  /** Rejects every pending command with code. */
  dropAll(code, reason) {
    for (const [id, entry] of this.#pending) {
      clearTimeout(entry.timer);
      this.#pending.delete(id);
      entry.reject(new RedisWsError(code, reason, entry.channel));
    }
  }
}
