// The JavaScript client of caddy-redis-ws: one WebSocket that follows many
// channels, reconnects with backoff and resumes each channel from its last
// position. See README.md.
export { connect, Client, V1, V2 } from "./src/client.js";
export { Subscription } from "./src/subscription.js";
export { RedisWsError, ErrorCodes } from "./src/errors.js";
export { CLOSE_GAP, CLOSE_TOKEN_EXPIRED } from "./src/closecodes.js";
