/* TypeScript declarations for herald-diff.js. */
import type { JSONValue } from './herald.js';
/** Returns the result `diff` (docs/diffs.md) makes of `current`; throws on a diff that does not fit. */
export function applyDiff(current: JSONValue | undefined, diff: JSONValue): JSONValue;
