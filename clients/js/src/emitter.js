// A small event emitter, the same in browsers and Node: on/off/once, and a
// listener that throws does not stop the others nor the client (the error is
// reported with queueMicrotask, where the host's unhandled-error hook sees it).
export class Emitter {
  #listeners = new Map();

  /** Calls listener for each event; returns a function that removes it. */
  on(event, listener) {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  once(event, listener) {
    const off = this.on(event, (...args) => {
      off();
      listener(...args);
    });
    return off;
  }

  off(event, listener) {
    this.#listeners.get(event)?.delete(listener);
  }

  emit(event, ...args) {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        listener(...args);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
