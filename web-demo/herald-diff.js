/*
 * Herald result diffs in the browser: applyDiff(current, diff) turns the
 * result a client holds into the new one, from the diff a live
 * subscription sends (docs/diffs.md). It follows hd__diff_apply() in
 * src/diff.c step for step; tests/js/test_diff.mjs checks the two agree.
 *
 * Values are JSON as the wire carries them (Convex JSON encoding): this
 * module treats them opaquely and compares ids as strings. It never
 * modifies `current` or `diff` (unchanged documents are shared between the
 * old and the new result, so a UI can compare them by identity), and it
 * never returns a half-applied result: a diff that does not fit throws.
 *
 * An ES module with no dependencies and no build step.
 */

const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/* Defines rather than assigns, so that a field named "__proto__" stays a field. */
function setField(obj, key, value) {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function fail(message) {
  throw new Error(`herald diff: ${message}`);
}

/* Unknown keys are refused, as src/diff.c does: they would be a diff this client cannot read. */
function checkKeys(obj, allowed, what) {
  if (!isObject(obj)) fail(`${what} is an object`);
  for (const k of Object.keys(obj)) {
    if (k.length !== 1 || !allowed.includes(k)) fail(`${what} has an unknown key ${JSON.stringify(k)}`);
  }
}

function isPosition(p) {
  return Number.isSafeInteger(p) && p >= 0;
}

/*
 * PATCH = {"s": {field: value}, "u": [field], "p": LIST}: set whole
 * top-level fields, remove fields, and patch the "page" array.
 */
function applyPatch(obj, patch) {
  if (!isObject(obj)) fail('an object patch needs an object');
  checkKeys(patch, 'sup', 'an object patch');
  const set = hasOwn(patch, 's') ? patch.s : {};
  const unset = hasOwn(patch, 'u') ? patch.u : [];
  if (!isObject(set) || !Array.isArray(unset)) fail('malformed object patch');
  const removed = new Set();
  for (const name of unset) {
    if (typeof name !== 'string' || !hasOwn(obj, name) || removed.has(name) || hasOwn(set, name))
      fail(`cannot remove field ${JSON.stringify(name)}`);
    removed.add(name);
  }
  const out = {};
  for (const key of Object.keys(obj)) if (!removed.has(key)) setField(out, key, obj[key]);
  for (const key of Object.keys(set)) setField(out, key, set[key]);
  if (hasOwn(patch, 'p')) {
    if (!hasOwn(obj, 'page') || removed.has('page') || hasOwn(set, 'page'))
      fail('a page patch needs a kept page field');
    setField(out, 'page', applyList(obj.page, patch.p));
  }
  return out;
}

/*
 * LIST = {"r": [id], "c": [[id, PATCH]], "m": [[id, pos]], "i": [[pos, doc]]}:
 * take out the removed and the moved documents, patch documents by id, then
 * place moves and inserts at their positions in ascending order, the
 * documents that stayed filling the gaps in their old order.
 */
function applyList(list, diff) {
  if (!Array.isArray(list)) fail('a list patch needs an array');
  checkKeys(diff, 'rcmi', 'a list patch');
  const part = (k) => {
    const v = hasOwn(diff, k) ? diff[k] : [];
    if (!Array.isArray(v)) fail(`"${k}" must be an array`);
    return v;
  };
  const removes = part('r'), changes = part('c'), moves = part('m'), inserts = part('i');

  const at = new Map(); /* id -> index in `list` */
  list.forEach((doc, i) => {
    const id = isObject(doc) ? doc._id : undefined;
    if (typeof id !== 'string' || at.has(id)) fail('the target is not a list of documents with unique ids');
    at.set(id, i);
  });
  const fate = new Array(list.length).fill('keep');
  const docIndex = (id, what) => {
    if (typeof id !== 'string' || !at.has(id)) fail(`no document to ${what} with id ${JSON.stringify(id)}`);
    return at.get(id);
  };
  for (const id of removes) {
    const i = docIndex(id, 'remove');
    if (fate[i] !== 'keep') fail(`removed twice: ${id}`);
    fate[i] = 'drop';
  }
  const placed = [];
  moves.forEach((m, k) => {
    if (!Array.isArray(m) || m.length !== 2 || !isPosition(m[1]) || (k && m[1] <= moves[k - 1][1]))
      fail('moves are [id, position] pairs in ascending position order');
    const i = docIndex(m[0], 'move');
    if (fate[i] !== 'keep') fail(`moved after removal: ${m[0]}`);
    fate[i] = 'move';
  });
  inserts.forEach((e, k) => {
    if (!Array.isArray(e) || e.length !== 2 || !isPosition(e[0]) || (k && e[0] <= inserts[k - 1][0]))
      fail('inserts are [position, document] pairs in ascending order');
  });
  const current = list.slice();
  const patched = new Set();
  for (const c of changes) {
    if (!Array.isArray(c) || c.length !== 2) fail('changes are [id, patch] pairs');
    const i = docIndex(c[0], 'change');
    if (fate[i] === 'drop' || patched.has(i)) fail(`changed after removal, or twice: ${c[0]}`);
    patched.add(i);
    current[i] = applyPatch(list[i], c[1]);
  }

  const len = list.length - removes.length + inserts.length;
  const out = new Array(len);
  let a = 0, b = 0, s = 0;
  for (let k = 0; k < len; k++) {
    if (a < moves.length && moves[a][1] === k) {
      out[k] = current[at.get(moves[a++][0])];
    } else if (b < inserts.length && inserts[b][0] === k) {
      out[k] = inserts[b++][1];
    } else {
      while (s < list.length && fate[s] !== 'keep') s++;
      if (s === list.length) fail('a position is repeated or past the end of the new list');
      out[k] = current[s++];
    }
  }
  if (a !== moves.length || b !== inserts.length)
    fail('a position is repeated or past the end of the new list');
  return out;
}

/**
 * Returns the result after `diff`. `current` is the result as last known
 * (undefined before the first one); `diff` is the value of an update's
 * "diff" (undefined or null: nothing changed).
 *
 *   {"v": value}  the new result itself
 *   {"a": LIST}   a patched array of documents
 *   {"o": PATCH}  a patched document or paginate object
 */
export function applyDiff(current, diff) {
  if (diff === undefined || diff === null) return current;
  if (!isObject(diff)) fail('a diff is an object');
  const keys = Object.keys(diff);
  if (keys.length !== 1) fail('a diff has exactly one key: v, a or o');
  switch (keys[0]) {
    case 'v':
      return diff.v;
    case 'a':
      return applyList(current, diff.a);
    case 'o':
      return applyPatch(current, diff.o);
    default:
      return fail(`unknown diff form ${JSON.stringify(keys[0])}`);
  }
}
