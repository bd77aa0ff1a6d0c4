/* TypeScript declarations for herald.js, Herald's JavaScript client. */

/** A value in Convex's JSON encoding, as the wire carries it. */
export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };

/** Convex's paginationOpts (docs/queries.md, "Live pages"). */
export interface PaginationOptions {
  numItems: number;
  /** Where the page starts (after this position); null: the start. */
  cursor?: string | null;
  /** Where the page ends, inclusive; its continueCursor stays this. */
  endCursor?: string | null;
  /** Convex's client sends it; ignored. */
  id?: number;
  maximumRowsRead?: number;
  maximumBytesRead?: number;
}

/** A page, as `paginate` returns it (raw queries and functions alike). */
export interface PaginationResult<T = JSONValue> {
  page: T[];
  isDone: boolean;
  continueCursor: string;
  /** With pageStatus: where to split a page that grew too large. */
  splitCursor?: string | null;
  pageStatus?: 'SplitRecommended' | 'SplitRequired' | null;
}

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
  paginate?: PaginationOptions;
  get?: string;
}

export type Operation =
  | { op: 'insert'; table: string; value: Record<string, JSONValue> }
  | { op: 'patch'; id: string; value?: Record<string, JSONValue>; unset?: string[] }
  | { op: 'replace'; id: string; value: Record<string, JSONValue> }
  | { op: 'delete'; id: string };

export class HeraldError extends Error {
  /** A stable code: InvalidArgument, Unauthorized, NotFound, ValidationError, FunctionError, ... */
  code: string;
  /** The data of a structured function error (herald.error{...}). */
  data?: JSONValue;
}

export interface ClientOptions {
  /** A user's JWT, or the admin key. */
  token?: string;
  /** A WebSocket class, for Node (e.g. the `ws` package). Browsers have one. */
  WebSocket?: unknown;
  onStatus?: (status: 'open' | 'reconnecting' | 'unauthorized', detail?: unknown) => void;
}

export class HeraldClient {
  constructor(url: string, options?: ClientOptions);
  /**
   * Calls `callback` with the current result now and after every change; returns an unsubscribe
   * function. A paginated subscription keeps the journal (its page's fixed end) of its first
   * result and sends it back when it re-subscribes after a reconnect.
   */
  subscribe(path: string, args: Record<string, JSONValue>,
            callback: (value: JSONValue, version: number) => void,
            onError?: (error: HeraldError) => void): () => void;
  subscribe(query: Query, callback: (value: JSONValue, version: number) => void,
            onError?: (error: HeraldError) => void): () => void;
  query(path: string, args?: Record<string, JSONValue>): Promise<{ value: JSONValue; version: number }>;
  query(query: Query): Promise<{ value: JSONValue; version: number }>;
  /** Calls a mutation function ("module:name"); resolves after the commit is durable and its updates arrived. */
  mutation(path: string, args?: Record<string, JSONValue>, options?: { idempotencyKey?: string }):
    Promise<{ value: JSONValue; version: number }>;
  /** Runs an action ("module:name"); resolves with its return value when it ended. */
  action(path: string, args?: Record<string, JSONValue>): Promise<JSONValue>;
  /** Resolves after the commit is durable and its updates reached this client. */
  mutate(ops: Operation[], options?: { idempotencyKey?: string }): Promise<{ value: Array<string | null>; version: number }>;
  /** Re-authenticates in place; every subscription is re-run under the new identity. */
  setAuth(token: string | null): Promise<void>;
  close(): void;
}

export function connect(url: string, options?: ClientOptions): HeraldClient;
