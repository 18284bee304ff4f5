// FakeWebSocket stands in for the server in the client's unit tests: each
// instance records what the client sent, and the test plays the server's
// part (open, frames, close).
export class FakeWebSocket {
  static all = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.sent = [];
    this.protocol = "";
    this.closed = null;
    FakeWebSocket.all.push(this);
  }
  static last() {
    return FakeWebSocket.all[FakeWebSocket.all.length - 1];
  }
  static reset() {
    FakeWebSocket.all = [];
  }
  /** The commands sent, parsed. */
  get commands() {
    return this.sent.map((s) => JSON.parse(s));
  }
  send(data) {
    this.sent.push(data);
  }
  close(code = 1005, reason = "") {
    if (this.closed) return;
    this.closed = { code, reason };
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }
  // The server's side:
  open(protocol = "redis_ws.v2") {
    this.protocol = protocol;
    this.onopen?.({});
  }
  frame(f) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  serverClose(code, reason = "") {
    this.closed = { code, reason };
    this.onclose?.({ code, reason });
  }
}
