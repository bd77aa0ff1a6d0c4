/*
 * Herald queries: the JSON query form and its execution (docs/queries.md).
 *
 * A query names a table, an index with a range (equalities on a prefix of
 * the index fields, then an optional lower and upper bound on the next
 * field), an order, a filter expression, and what to return: every match
 * (collect), the first, the only one (unique), the first n (take), or a
 * page (paginate) with an opaque cursor.
 *
 * Every execution reports its read set: the key ranges of the indexes it
 * scanned, only as far as it actually read them. A commit whose write set
 * (store.h) has no key inside any of these ranges cannot have changed the
 * result.
 *
 * Caveats
 * - A herald_query is immutable after parsing and may be run many times,
 *   from any thread, against any snapshot.
 * - Results are new value trees owned by the caller.
 */
#ifndef HERALD_QUERY_H
#define HERALD_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/error.h"
#include "herald/store.h"
#include "herald/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A half-open key range [lo, hi) of one index; hi == NULL means unbounded. */
typedef struct herald_read_range {
    uint32_t index_id;
    uint8_t *lo;
    size_t lo_len;
    uint8_t *hi;
    size_t hi_len;
} herald_read_range;

typedef struct herald_read_set {
    herald_read_range *ranges;
    size_t len, cap;
} herald_read_set;

void herald_read_set_init(herald_read_set *rs);
void herald_read_set_free(herald_read_set *rs);

/* True if any key of `ws` (removed or added) lies in any range of `rs`. */
bool herald_read_set_overlaps(const herald_read_set *rs, const herald_write_set *ws);

/* True if `key` of index `index_id` lies in `r`. */
bool herald_read_range_contains(const herald_read_range *r, uint32_t index_id, const uint8_t *key,
                                size_t key_len);

typedef struct herald_query herald_query;

typedef struct herald_query_limits {
    size_t max_docs;  /* documents read per execution; 0 = 32,768 */
    size_t max_bytes; /* encoded bytes read per execution; 0 = 16 MiB */
} herald_query_limits;

/*
 * Parses the JSON query form against `schema` (table and index names,
 * range fields are checked here). The query keeps no pointer into `text`
 * or `schema`.
 */
int herald_query_parse(const char *text, size_t len, const herald_schema *schema,
                       herald_query **out, herald_error *err);
/* The same from an already parsed value (Convex JSON object form). */
int herald_query_from_value(const herald_value *q, const herald_schema *schema, herald_query **out,
                            herald_error *err);
void herald_query_free(herald_query *q);

/* True for a `paginate` query. */
bool herald_query_paginates(const herald_query *q);

/*
 * A live page's journal (docs/queries.md, "Live pages"): fixes the end of
 * a `paginate` query that has no endCursor of its own at `journal` (the
 * continueCursor of the page's first run). No effect on other queries, on
 * a NULL or empty journal, or on a page that names its endCursor. Call it
 * before the query is shared or run. Returns 0, or HERALD_ENOMEM. A
 * journal that does not belong to the query fails at run time
 * (InvalidCursor), as any cursor does.
 */
int herald_query_set_journal(herald_query *q, const char *journal);

/* The fixed end of a `paginate` query (endCursor or journal; owned by q), or NULL. */
const char *herald_query_end_cursor(const herald_query *q);

/*
 * Runs the query in `t` (a snapshot or a mutation). `limits` may be NULL.
 * *result is: an array (collect, take), a document or null (first,
 * unique), or {"page": [...], "isDone": bool, "continueCursor": string}
 * (paginate), with "splitCursor" and "pageStatus" ("SplitRecommended" or
 * "SplitRequired") when a page with a fixed end should be split
 * (docs/queries.md, "Live pages"). `rs` may be NULL; otherwise the ranges
 * read are appended. A cursor of another query fails with HERALD_EINVAL
 * and a message that starts with "InvalidCursor".
 */
int herald_query_run(const herald_query *q, herald_txn *t, const herald_query_limits *limits,
                     herald_value *result, herald_read_set *rs, herald_error *err);

#ifdef __cplusplus
}
#endif
#endif
