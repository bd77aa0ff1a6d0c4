/*
 * The read-set index: which live subscriptions can a commit have changed?
 *
 * Each owner (a subscription, named by a 64-bit id the caller chooses)
 * registers the key ranges its last run read (query.h, herald_read_set).
 * For a commit's write sets (store.h), hd__rsindex_match() reports every
 * owner having a range that contains at least one written key, removed or
 * added, and never looks at the others. Per written key a match costs one
 * hash probe (point ranges [k, k||0x00)) plus O(log n) tree steps for the
 * other ranges, plus O(log n) per matching non-point range and O(1) per
 * owner reported; n is the number of distinct ranges. Adding or removing
 * an owner costs O(log n) per range.
 *
 * Identical ranges of several owners are stored once. Ranges that contain
 * no key (hi <= lo) are not stored: they can never match.
 *
 * Out of memory: every function that allocates returns HERALD_ENOMEM and
 * leaves the index exactly as it was before the call (for
 * hd__rsindex_add, the owner keeps its previous ranges). A failed
 * hd__rsindex_match has called `fn` for nobody; the caller must then treat
 * every owner as possibly changed.
 *
 * Caveats
 * - Not thread-safe: one thread uses an index at a time.
 * - The index keeps no pointer into the read sets or write sets it is
 *   given.
 * - The list of owners a match collects is kept for the next call, so the
 *   index holds 8 bytes per owner of the largest match so far.
 */
#ifndef HD_RSINDEX_H
#define HD_RSINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "herald/query.h"
#include "herald/store.h"

typedef struct hd_rsindex hd_rsindex;

/* A new, empty index. Returns 0 or HERALD_ENOMEM. */
int hd__rsindex_new(hd_rsindex **out);

/* Frees the index and everything it copied. `x` may be NULL. */
void hd__rsindex_free(hd_rsindex *x);

/*
 * Registers every range of `rs` under `owner`, replacing the ranges the
 * owner had (an owner left without ranges is forgotten, as by
 * hd__rsindex_remove). The key bytes are copied. Returns 0 or
 * HERALD_ENOMEM (nothing changed).
 */
int hd__rsindex_add(hd_rsindex *x, uint64_t owner, const herald_read_set *rs);

/* Forgets `owner` and its ranges; an unknown owner is a no-op. */
void hd__rsindex_remove(hd_rsindex *x, uint64_t owner);

/*
 * Calls fn(ctx, owner) once for every owner having a range that contains
 * at least one key (removed or added) of the `nws` write sets `ws`; each
 * owner at most once per call, in no particular order. The owners are
 * collected before the first call of `fn`, so `fn` may add and remove
 * owners (and even call hd__rsindex_match), but must not free `x`; every
 * collected owner is reported even if `fn` removed it meanwhile.
 * Returns 0 or HERALD_ENOMEM (then `fn` was not called at all).
 */
int hd__rsindex_match(hd_rsindex *x, const herald_write_set *const *ws, size_t nws,
                      void (*fn)(void *ctx, uint64_t owner), void *ctx);

/* The number of distinct (index, lo, hi) ranges stored. */
size_t hd__rsindex_count(const hd_rsindex *x);

/* The number of owners registered (owners with at least one stored range). */
size_t hd__rsindex_owners(const hd_rsindex *x);

/*
 * For tests: walks the whole index and checks every invariant (tree order
 * and balance, subtree maxima, the links between owners and ranges, the
 * counts). Returns 0, or -1 at the first violation. O(n).
 */
int hd__rsindex_check(const hd_rsindex *x);

/*
 * For tests: the tree nodes the last hd__rsindex_match call visited, its
 * work apart from reporting owners.
 */
size_t hd__rsindex_visited(const hd_rsindex *x);

/*
 * For tests: after `n` more successful allocations, every allocation by
 * this index fails until the next call; n < 0 turns failures off.
 */
void hd__rsindex_fail_after(hd_rsindex *x, long n);

#endif
