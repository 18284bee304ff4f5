// Checked by `tsc -p test/types` (npm test's pretest): an application's use
// of index.d.ts compiles, and each @ts-expect-error line is a misuse the
// types must refuse (tsc fails if one compiles).
import {
  connect,
  Client,
  RedisWsError,
  ErrorCodes,
  V1,
  V2,
  CLOSE_GAP,
  CLOSE_TOKEN_EXPIRED,
  type Message,
  type PublishAck,
  type Subscription,
  type SubscribedEvent,
  type UnrecoveredEvent,
  type WebSocketConstructor,
} from "../../index.js";

declare const WebSocketImpl: WebSocketConstructor;

export async function chat(): Promise<string[]> {
  const client: Client = connect("wss://example.com/ws", {
    WebSocket: WebSocketImpl,
    token: "eyJ…",
    getToken: async () => "eyJ…",
    timeout: 5000,
    minDelay: 100,
    maxDelay: 10000,
    refreshBefore: 30000,
  });
  client.on("connected", ({ protocol }) => console.log(protocol === V2 || protocol === V1));
  client.on("disconnected", ({ code, reason, reconnectIn }) => console.log(code, reason, reconnectIn));
  client.on("closed", ({ code }) => console.log(code === CLOSE_TOKEN_EXPIRED || code === CLOSE_GAP));
  client.on("subscription", (sub: Subscription) => console.log(sub.channel, sub.route));
  client.on("error", (err) => console.log(err instanceof RedisWsError ? err.code : err.message));

  const room = client.subscribe("room:a", { rewind: 20, getToken: async (channel) => `token for ${channel}` });
  const off = room.on("message", (m: Message) => {
    const text: string = typeof m.data === "string" ? m.data : new TextDecoder().decode(m.data);
    console.log(m.channel, text, m.binary, m.offset ?? 0, m.epoch ?? "");
  });
  room.on("unrecovered", (ev: UnrecoveredEvent) => console.log(ev.reason === "trimmed" || ev.reason === "gap"));
  room.on("join", ({ channel, user }) => console.log(channel, user));
  room.on("error", (err) => console.log(err.code === "token_expired", err.reason, err.channel));
  const subscribed: SubscribedEvent = await room.ready();
  console.log(subscribed.position?.epoch, subscribed.position?.offset, subscribed.recovered);
  const ack: PublishAck = await room.publish("hi");
  await client.publish("room:b", new Uint8Array([1, 2, 3]));
  console.log(ack.offset, room.since, room.state, client.state, ErrorCodes.TIMEOUT);
  off();
  await room.unsubscribe();
  console.log(client.getSubscription("room:a")?.state, client.subscriptions().length);
  client.close();
  return room.presence();
}

export function misuses(client: Client): void {
  // @ts-expect-error: since and rewind are a string and a number
  client.subscribe("room:a", { since: 41 });
  // @ts-expect-error: a publish takes text or bytes
  void client.publish("room:a", { text: "hi" });
  // @ts-expect-error: no such event
  client.on("messages", () => {});
  // @ts-expect-error: a state the client never has
  if (client.state === "open") return;
  // @ts-expect-error: the close codes are constants
  const gap: 4002 = CLOSE_GAP;
  console.log(gap);
}
