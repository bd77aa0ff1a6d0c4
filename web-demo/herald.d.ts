/* TypeScript declarations for herald.js, Herald's JavaScript client. */

/** A value in Convex's JSON encoding, as the wire carries it. */
export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };

/** The JSON query form of docs/queries.md. */
export interface Query {
  table: string;
  index?: string;
  range?: Array<Record<'eq' | 'lt' | 'lte' | 'gt' | 'gte', [string, JSONValue]>>;
  order?: 'asc' | 'desc';
  filter?: JSONValue;
  collect?: true;
  take?: number;
  first?: true;
  unique?: true;
  paginate?: { numItems: number; cursor?: string | null };
  get?: string;
}

export type Operation =
  | { op: 'insert'; table: string; value: Record<string, JSONValue> }
  | { op: 'patch'; id: string; value?: Record<string, JSONValue>; unset?: string[] }
  | { op: 'replace'; id: string; value: Record<string, JSONValue> }
  | { op: 'delete'; id: string };

export class HeraldError extends Error {
  /** A stable code: InvalidArgument, Unauthorized, NotFound, ValidationError, ... */
  code: string;
}

export interface ClientOptions {
  /** The admin key (or, later, a user's JWT). */
  token?: string;
  /** A WebSocket class, for Node (e.g. the `ws` package). Browsers have one. */
  WebSocket?: unknown;
  onStatus?: (status: 'open' | 'reconnecting' | 'unauthorized', detail?: unknown) => void;
}

export class HeraldClient {
  constructor(url: string, options?: ClientOptions);
  /** Calls `callback` with the current result now and after every change; returns an unsubscribe function. */
  subscribe(query: Query, callback: (value: JSONValue, version: number) => void,
            onError?: (error: HeraldError) => void): () => void;
  query(query: Query): Promise<{ value: JSONValue; version: number }>;
  /** Resolves after the commit is durable and its updates reached this client. */
  mutate(ops: Operation[], options?: { idempotencyKey?: string }): Promise<{ value: Array<string | null>; version: number }>;
  setAuth(token: string | null): void;
  close(): void;
}

export function connect(url: string, options?: ClientOptions): HeraldClient;
