// Types of the caddy-redis-ws client (index.js).

/** What a WebSocket implementation must offer: the browser's, or `ws` in Node. */
export interface WebSocketLike {
  readonly protocol: string;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike;

export interface ClientOptions {
  /** A signed token (JWT), sent as the subprotocol `redis_ws.token.<token>`. */
  token?: string;
  /** Gets a fresh token: before the current one's exp, and before each reconnect. */
  getToken?: () => string | Promise<string>;
  /** The WebSocket implementation; globalThis.WebSocket by default. */
  WebSocket?: WebSocketConstructor;
  /** ms a command waits for its answer (default 10000). */
  timeout?: number;
  /** ms, the bound of the first reconnect's delay (default 500). */
  minDelay?: number;
  /** ms, the bound of every reconnect's delay (default 20000). */
  maxDelay?: number;
  /** ms before a token's exp to get a fresh one (default 60000). */
  refreshBefore?: number;
}

export interface SubscribeOptions {
  /** Resume after this position, `<epoch>:<offset>` (not with rewind). */
  since?: string;
  /** Replay the last n recorded messages first (not with since). */
  rewind?: number;
  /** A token that grants this channel. */
  token?: string;
  /**
   * Gets a token for this channel at each (re)subscribe, and when the
   * server dropped the channel at its token's exp (then it subscribes again
   * from the last position). Without it, a `token` that expires ends the
   * subscription with an error event, code "token_expired".
   */
  getToken?: (channel: string) => string | Promise<string>;
}

export interface Position {
  epoch: string;
  offset: number;
}

export interface Message {
  channel: string;
  /** Text as a string, binary as bytes. */
  data: string | Uint8Array;
  binary: boolean;
  /** The message's position, when it was recorded. */
  offset?: number;
  epoch?: string;
}

export interface SubscribedEvent {
  channel: string;
  position: Position | null;
  /** Set when the subscribe resumed (since): false means messages may be missing. */
  recovered?: boolean;
}

export interface UnrecoveredEvent {
  channel: string;
  /** "trimmed": the history no longer holds them; "gap": the server closed with 4001. */
  reason: "trimmed" | "gap";
}

export interface PresenceEvent {
  channel: string;
  user?: string;
}

export interface PublishAck {
  channel: string;
  offset?: number;
  epoch?: string;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

type Listener<T> = (ev: T) => void;

export declare class Subscription {
  readonly channel: string;
  /** The route's own channel, subscribed by the server at each open. */
  readonly route: boolean;
  readonly state: "pending" | "subscribing" | "subscribed" | "unsubscribed";
  readonly position: Position | null;
  readonly since: string | undefined;
  on(event: "subscribed", listener: Listener<SubscribedEvent>): () => void;
  on(event: "unrecovered", listener: Listener<UnrecoveredEvent>): () => void;
  on(event: "message", listener: Listener<Message>): () => void;
  on(event: "join" | "leave" | "presence_reset", listener: Listener<PresenceEvent>): () => void;
  on(event: "error", listener: Listener<RedisWsError>): () => void;
  once: Subscription["on"];
  off(event: string, listener: (...args: any[]) => void): void;
  ready(): Promise<SubscribedEvent>;
  presence(): Promise<string[]>;
  publish(data: string | ArrayBuffer | ArrayBufferView): Promise<PublishAck>;
  unsubscribe(): Promise<void>;
}

export declare class Client {
  constructor(url: string | URL, options?: ClientOptions);
  readonly state: "connecting" | "connected" | "disconnected" | "closed";
  /** The subprotocol the server chose: "redis_ws.v2" (commands) or "redis_ws.v1". */
  readonly protocol: string;
  on(event: "connecting", listener: Listener<{}>): () => void;
  on(event: "connected", listener: Listener<{ protocol: string }>): () => void;
  on(event: "disconnected", listener: Listener<CloseInfo & { reconnectIn: number }>): () => void;
  on(event: "closed", listener: Listener<CloseInfo>): () => void;
  on(event: "subscription", listener: Listener<Subscription>): () => void;
  on(event: "message", listener: Listener<Message>): () => void;
  on(event: "unrecovered", listener: Listener<UnrecoveredEvent>): () => void;
  on(event: "join" | "leave" | "presence_reset", listener: Listener<PresenceEvent>): () => void;
  on(event: "error", listener: Listener<Error>): () => void;
  once: Client["on"];
  off(event: string, listener: (...args: any[]) => void): void;
  subscribe(channel: string, options?: SubscribeOptions): Subscription;
  getSubscription(channel: string): Subscription | undefined;
  subscriptions(): Subscription[];
  publish(channel: string, data: string | ArrayBuffer | ArrayBufferView): Promise<PublishAck>;
  presence(channel: string): Promise<string[]>;
  close(): void;
}

export declare function connect(url: string | URL, options?: ClientOptions): Client;

export declare class RedisWsError extends Error {
  /** The server's code (bad_request, forbidden, …, token_expired) or the client's (timeout, disconnected, not_supported, closed, bad_frame). */
  readonly code: string;
  readonly reason: string;
  readonly channel?: string;
}

export declare const ErrorCodes: {
  readonly TIMEOUT: "timeout";
  readonly DISCONNECTED: "disconnected";
  readonly NOT_SUPPORTED: "not_supported";
  readonly CLOSED: "closed";
  readonly BAD_FRAME: "bad_frame";
};

export declare const V1: "redis_ws.v1";
export declare const V2: "redis_ws.v2";
export declare const CLOSE_GAP: 4001;
export declare const CLOSE_TOKEN_EXPIRED: 4003;
