/*
 * Result diffs: what a live subscription sends instead of a whole result.
 *
 * hd__diff() compares the previous and the new result of a query and
 * builds a small value describing how to turn one into the other; the
 * caller encodes it with herald_value_to_json() and sends it. Its size
 * follows what changed, not the size of the result (SPEC §4).
 * hd__diff_apply() is the reference meaning of that value: the JavaScript
 * client (web-demo/herald-diff.js) implements exactly the same steps.
 * The format is documented in docs/diffs.md:
 *
 *   {"v": VALUE}   replace the whole result
 *   {"a": LIST}    patch an array of documents with unique string _id
 *   {"o": PATCH}   patch an object: a document that kept its _id, or a
 *                  paginate result {"page", "isDone", "continueCursor"}
 *   LIST  = {"r": [id...], "c": [[id, PATCH]...], "m": [[id, pos]...],
 *            "i": [[pos, doc]...]}                  (every key optional)
 *   PATCH = {"s": {field: value...}, "u": [field...], "p": LIST}
 *
 * Caveats
 * - Neither function keeps a pointer into its arguments; diffs own deep
 *   copies of the values they carry.
 * - Values are compared with herald_value_compare(), so a NaN equals the
 *   same NaN and -0 differs from +0 (the diff then carries the -0).
 * - Positions are float64 (plain JSON numbers on the wire); int64
 *   positions are accepted by hd__diff_apply() too.
 * - Both functions are pure over their arguments and thread-safe as long
 *   as no other thread modifies those values.
 */
#ifndef HD_DIFF_H
#define HD_DIFF_H

#include "herald/error.h"
#include "herald/value.h"

/*
 * Builds in *out the diff that turns `old_result` into `new_result`.
 *
 * - Identical results (herald_value_equal): *out is HERALD_UNDEFINED and
 *   there is nothing to send.
 * - `old_result` may be HERALD_UNDEFINED (nothing sent yet): the diff is
 *   then a replacement {"v": new_result}.
 * - `new_result` must not be HERALD_UNDEFINED (it has no JSON form).
 *
 * *out is owned by the caller (herald_value_free). Neither input is
 * modified. Returns 0, HERALD_ENOMEM, or HERALD_EINVAL for an undefined
 * `new_result` or NULL arguments; on failure *out is HERALD_UNDEFINED.
 */
int hd__diff(const herald_value *old_result, const herald_value *new_result, herald_value *out,
             herald_error *err);

/*
 * Applies `diff` (a value built by hd__diff, or parsed from its JSON) to
 * *target in place. A HERALD_UNDEFINED (or null) diff changes nothing.
 *
 * The diff is checked completely before *target is touched: on any
 * failure *target is left exactly as it was. Returns 0, HERALD_EINVAL for
 * a diff that does not fit *target (an unknown id, a position out of
 * range, a malformed diff; the message says which), or HERALD_ENOMEM.
 * `diff` is not modified and may be freed afterwards.
 */
int hd__diff_apply(herald_value *target, const herald_value *diff, herald_error *err);

#endif
