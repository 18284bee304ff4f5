// RedisWsError is every refusal the client reports: code is for programs
// (the server's error codes, see protocol/command.go, and the client's own
// below), reason for people.
export class RedisWsError extends Error {
  constructor(code, reason, channel) {
    super(channel ? `${code}: ${reason} (channel ${channel})` : `${code}: ${reason}`);
    this.name = "RedisWsError";
    this.code = code;
    this.reason = reason;
    if (channel) this.channel = channel;
  }
}

// The client's own codes, beside the server's.
export const ErrorCodes = Object.freeze({
  // No answer within the command timeout; the command may still have been done.
  TIMEOUT: "timeout",
  // The connection closed before the answer came, or was not open when the
  // command was made: the command may or may not have been done.
  DISCONNECTED: "disconnected",
  // The server speaks redis_ws.v1, which has no commands.
  NOT_SUPPORTED: "not_supported",
  // client.close() was called.
  CLOSED: "closed",
  // The server sent a frame that is not a JSON object (an error event).
  BAD_FRAME: "bad_frame",
});
