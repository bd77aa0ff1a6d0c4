/*
 * Exact vector search over a table's vector index (SPEC §2: vectorIndex
 * with a vectorField, dimensions and filterFields), for ctx.vectorSearch
 * in functions.
 *
 * The documents in LMDB stay the truth. Next to them each store keeps, in
 * memory, one packed array per vector index: every indexed document's
 * vector as unit-length float32, padded to a multiple of 16 floats, with
 * its id, its filter fields' encoded values and the versions between which
 * it is visible. A search scans that array with one tight loop. The array
 * is built from the documents by the first search of the index, and kept
 * in step from committed write sets: herald_group_commit() calls
 * hd__vector_note() with the ids the group wrote (cheap, no decoding), and
 * the next search applies them from its own snapshot. Rows carry the
 * versions at which they appeared and disappeared, so a search sees
 * exactly its snapshot; a mutation sees the cache as of the last commit
 * and reads the documents its group wrote (and those not yet applied)
 * from its own transaction. docs/storage.md says why it is not in LMDB.
 *
 * Caveats: the cache is per herald_store, shared by threads (a rwlock; the
 * commit hook takes only a short mutex, never waits for a scan). Memory is
 * 4 * padded dimensions bytes per indexed document plus ~60 bytes.
 */
#ifndef HD_VECTOR_H
#define HD_VECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "herald/query.h"
#include "herald/store.h"

#define HD_VECTOR_MAX_LIMIT     256
#define HD_VECTOR_DEFAULT_LIMIT 10

typedef struct hd_vecstore hd_vecstore;

/*
 * Runs a vector search in `t` (a read snapshot or a mutation). `spec` is
 * an object {"table": T, "index": NAME, "vector": [numbers], "limit": n
 * (optional), "filter": [[FIELD, VALUE], ...] (optional: a disjunction of
 * equalities; an empty list matches nothing)}. *result is a new array of
 * {"_id", "_score"} objects, best first (cosine similarity, ties by id),
 * owned by the caller. The whole table's by_id range goes into `rs` (when
 * not NULL): any write to the table re-runs a subscription that searched
 * it. Errors: HERALD_ENOTFOUND (no such table or vector index),
 * HERALD_EINVAL (vector of the wrong length, not numbers, NaN or infinite,
 * all zero; limit outside 1..256; a filter on a field that is not one of
 * the index's filterFields), HERALD_ENOMEM, storage errors.
 */
int hd__vector_search(herald_txn *t, const herald_value *spec, herald_value *result,
                      herald_read_set *rs, herald_error *err);

/*
 * Called by herald_group_commit() on the writer thread just before the
 * group's LMDB commit: notes which documents of tables with vector indexes
 * the group wrote. If the commit then fails the notes are harmless (the
 * documents are re-read from a later snapshot, unchanged).
 */
void hd__vector_note(herald_store *s, const herald_group *g);

/*
 * The packed scan itself, exposed for bench/bench_vector.c: the dot
 * product of `q` with rows which[0..n) of `rows` (each `stride` floats,
 * stride a multiple of 16, rows and q 64-byte aligned) into scores[0..n).
 */
void hd__vector_dots(const float *q, const float *rows, size_t stride, const uint32_t *which,
                     size_t n, float *scores);

/* Frees the cache of a store (herald_store_close()). */
void hd__vector_free(hd_vecstore *vs);

#endif
