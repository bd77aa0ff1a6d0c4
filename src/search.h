/*
 * Full-text search over a table's search index (SPEC §2: searchIndex with
 * a searchField and filterFields), for `withSearchIndex` in functions.
 *
 * A search reads only the postings of its terms (fts.h), never the table:
 * for every term but the last, the postings of that term (narrowed to the
 * equality filters on the index's leading filter fields); for the last
 * term, the postings of every term it is a prefix of. Then it reads the
 * documents it returns, by id. Its read set is exactly that: one key range
 * of postings per term and the returned documents, so a commit re-runs a
 * live search only when it wrote a posting of one of its terms (under its
 * filter values) or changed one of the documents it returned.
 *
 * Relevance is BM25 (k1 = 1.2, b = 0.75) over the documents that match at
 * least one term and pass the filters (docs/functions.md): their number,
 * their mean length and each term's document frequency among them. The
 * last term scores with the best of the terms it is a prefix of. Ties go
 * to the newer document, then the smaller id.
 */
#ifndef HD_SEARCH_H
#define HD_SEARCH_H

#include "herald/query.h"
#include "herald/schema.h"
#include "herald/store.h"

/* At most this many results, as in Convex. */
#define HD_SEARCH_MAX_RESULTS 1024
/* At most this many terms in a search text, as in Convex. */
#define HD_SEARCH_MAX_TERMS 16
/* At most this many equality filters, as in Convex. */
#define HD_SEARCH_MAX_FILTERS 8
/* A search that would read more postings fails with HERALD_ELIMIT. */
#define HD_SEARCH_MAX_POSTINGS 262144
/* So does one whose results take more stored bytes (the query read limit). */
#define HD_SEARCH_MAX_BYTES (16 << 20)

/*
 * Runs a search. `spec` is an object: {"table": T, "index": NAME,
 * "field": F, "search": TEXT, "filters": [[FIELD, VALUE], ...]} and one of
 * "take": n, "first": true, "collect": true. Terms are runs of letters
 * and digits (any non-ASCII byte counts as a letter), compared without
 * ASCII case and cut at 64 bytes; the last term also matches as a prefix
 * ("prog" finds "programming"). *result is an array (take, collect) or a
 * document or null (first), owned by the caller. `rs` (may be NULL) gets
 * the ranges read.
 *
 * Errors, all before anything is read: HERALD_ENOTFOUND (no such table or
 * search index), HERALD_EINVAL (a text without terms, more than
 * HD_SEARCH_MAX_TERMS terms, a field other than the search field, a filter
 * on a field that is not a filter field, more than HD_SEARCH_MAX_FILTERS
 * filters, a bad take), HERALD_EBUSY (a read-only store whose index was
 * never built); then HERALD_ELIMIT past HD_SEARCH_MAX_POSTINGS postings
 * or HD_SEARCH_MAX_BYTES of results.
 */
int hd__search_run(herald_txn *t, const herald_schema *schema, const herald_value *spec,
                   herald_value *result, herald_read_set *rs, herald_error *err);

#endif
