/*
 * The full-text index: postings of every search index, kept in the `fts`
 * sub-database in the same write transaction as the documents.
 *
 * Format (docs/storage.md, "Search indexes"). A posting is one (document,
 * term) pair of one search index:
 *
 *   key   search index id (4 bytes, big-endian; drawn from the same counter
 *         as index ids, so ids never collide in read and write sets)
 *         · the term's bytes · 0x00
 *         · the encoded value of each filter field, in the index's order
 *         · the document id (20 bytes)
 *   value term frequency (u32 BE) · document length in terms (u32 BE)
 *         · _creationTime (8 bytes, the key encoding's float64 body)
 *         [· the filter values' encoding, only when the key was cut]
 *
 * Terms are runs of ASCII letters and digits and of bytes >= 0x80, lowered
 * for ASCII, cut at HD_FTS_MAX_TERM bytes: they never hold a 0x00, so the
 * terminator makes the encoding prefix-free and a term prefix `p` is the
 * key range [id·p, successor(id·p)). A key longer than LMDB's 511 bytes
 * (long filter values) is stored cut to its first HD_FTS_CUT bytes and the
 * document id, and its filter values move to the value; read and write
 * sets always carry the full key.
 *
 * Registry: meta key "s:<table>/<index>" holds the search index id and a
 * fingerprint of its definition (format, search field, filter fields). An
 * index whose entry is missing or whose definition changed gets a new id
 * and is built from the table's documents when the store is opened for
 * writing or a schema is applied; postings of dropped indexes are deleted.
 *
 * This module must never leave a document's postings out of step with the
 * document: every write goes through hd__fts_write() in the mutation's own
 * transaction, and every changed posting shows in the write set.
 */
#ifndef HD_FTS_H
#define HD_FTS_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "herald/schema.h"
#include "herald/store.h"

#define HD_FTS_MAX_TERM 64
/* A stored posting key keeps this many bytes of its full key, then the id. */
#define HD_FTS_CUT (511 - 20)
/* Bytes of a posting value before the optional filter values. */
#define HD_FTS_VALUE_BYTES 16

struct hd_table;
typedef struct hd_fts hd_fts;

/* One search index as the store runs it. `def` is owned by the schema. */
typedef struct hd_fts_index {
    uint32_t id;
    uint32_t table_number;
    const char *table; /* owned by the schema */
    const herald_search_index_def *def;
    bool built; /* false only in a read-only store written before postings existed */
} hd_fts_index;

/*
 * Loads the search indexes of the runtime tables `tables` (their schema's
 * definitions) in transaction `txn`. With `writable`, creates the `fts`
 * sub-database, registers and builds every index that has no postings yet
 * (or whose definition changed) from the table's documents, and deletes
 * the postings of indexes the schema no longer has; without, only reads
 * the registry. *out is owned by the caller (hd__fts_free) and borrows
 * from the tables' schema. Returns 0 or a Herald code (message in `err`).
 */
int hd__fts_load(herald_store *s, MDB_txn *txn, const struct hd_table *tables, size_t ntables,
                 bool writable, hd_fts **out, herald_error *err);
void hd__fts_free(hd_fts *f);

/* The search index `name` of `table`, or NULL. */
const hd_fts_index *hd__fts_index(const hd_fts *f, const char *table, const char *name);
/* The sub-database of postings; false when the store has none (read-only, old). */
bool hd__fts_dbi(const hd_fts *f, MDB_dbi *out);

/*
 * Updates the postings of document `id` of `tab` from `old` (NULL for an
 * insert) to `doc` (NULL for a delete) in every search index of the table,
 * writing only postings that changed and recording their full keys in the
 * mutation's write set (removed: the old key, added: the new one).
 */
int hd__fts_write(herald_txn *m, const struct hd_table *tab, const uint8_t id[HERALD_ID_BYTES],
                  const herald_value *old, const herald_value *doc, herald_error *err);

/*
 * For herald check: every document of every built search index has exactly
 * its postings, with their values, and every posting belongs to a search
 * index and an existing document of its table. Each problem goes to
 * `problem` as one line. Returns 0 or a Herald code for a failed read.
 */
int hd__fts_check(herald_txn *t, void (*problem)(void *ctx, const char *line), void *ctx,
                  herald_error *err);

/* ---- shared with search.c ---- */

/* One term of a text: `len` bytes at `p`, already lowered. */
typedef struct hd_fts_token {
    const char *p;
    size_t len;
} hd_fts_token;

/*
 * Splits `text` into terms, lowered, into a fresh copy (*lowered, freed by
 * the caller with the array *tokens). Returns 0 or HERALD_ENOMEM.
 */
int hd__fts_tokenize(const char *text, size_t n, char **lowered, hd_fts_token **tokens,
                     size_t *ntokens);

/*
 * The full key of a stored posting: from the stored key and value, into
 * `out`. Returns false when the entry is malformed.
 */
bool hd__fts_full_key(const MDB_val *k, const MDB_val *v, hd_buf *out);

#endif
