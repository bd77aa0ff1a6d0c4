/*
 * Full-text search over a table's search index (SPEC §2: searchIndex with
 * a searchField and filterFields), for `withSearchIndex` in functions.
 *
 * Herald keeps no inverted index: a search reads the table's documents
 * that pass the equality filters and ranks those whose search field
 * matches the query's terms. Its read set is everything it read, so a
 * subscription to a search is re-run by any change to the table. Tables
 * past the query read limit (32,768 documents) fail with HERALD_ELIMIT.
 */
#ifndef HD_SEARCH_H
#define HD_SEARCH_H

#include "herald/query.h"
#include "herald/schema.h"
#include "herald/store.h"

/* At most this many results, as in Convex. */
#define HD_SEARCH_MAX_RESULTS 1024

/*
 * Runs a search. `spec` is an object: {"table": T, "index": NAME,
 * "search": TEXT, "filters": [[FIELD, VALUE], ...]} and one of
 * "take": n, "first": true, "collect": true. Terms are runs of letters
 * and digits (any non-ASCII byte counts as a letter), compared without
 * ASCII case; the last term also matches as a prefix ("prog" finds
 * "programming"). Documents matching more distinct terms come first, then
 * more occurrences, then newer ones. *result is an array (take, collect)
 * or a document or null (first), owned by the caller.
 */
int hd__search_run(herald_txn *t, const herald_schema *schema, const herald_value *spec,
                   herald_value *result, herald_read_set *rs, herald_error *err);

#endif
