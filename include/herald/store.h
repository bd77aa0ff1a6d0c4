/*
 * Herald store: documents and indexes in an LMDB environment.
 *
 * One data folder holds one LMDB environment. Documents live in one
 * sub-database keyed by their binary id; every index (system and user) has
 * its entries in a second one, keyed by index id, the order-preserving
 * encoding of the indexed values and `_creationTime`, then the document id.
 *
 * Writes happen in groups: herald_group_begin() opens the LMDB write
 * transaction, each mutation runs in its own nested transaction
 * (herald_mutation_begin/commit/abort), and herald_group_commit() makes the
 * whole group durable with one commit (one fsync). A failing mutation rolls
 * back only itself. Each committed mutation gets the next commit version,
 * a u64 that is persisted and strictly increasing across restarts.
 *
 * Caveats
 * - One group at a time per store, from one thread: LMDB allows a single
 *   write transaction. Read transactions (herald_read_begin) may run in any
 *   thread concurrently with a group; keep them short and never hold one
 *   across event-loop turns, or LMDB cannot reuse pages.
 * - Do not fork() with a store open.
 * - One writer per data folder: a store opened for writing holds an
 *   exclusive lock (flock(2) on `herald.lock` in the folder, which records
 *   the writer's pid and owner) until herald_store_close(). Another writer,
 *   in this process or any other, is refused with HERALD_EBUSY naming it;
 *   stores opened read-only take no lock and may run beside the writer
 *   (LMDB serves readers across processes). The kernel drops the lock when
 *   the process ends, also when it is killed with SIGKILL.
 * - The map grows by itself up to `max_map_size`; past it a mutation fails
 *   with HERALD_EMAPFULL and the database stays intact. A full disk fails
 *   the group commit with HERALD_EIO; nothing of that group is kept.
 */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/error.h"
#include "herald/schema.h"
#include "herald/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct herald_store herald_store;
typedef struct herald_txn herald_txn;     /* a read snapshot or a mutation */
typedef struct herald_group herald_group; /* one durable commit */

typedef struct herald_store_options {
    size_t initial_map_size; /* bytes; 0 = 64 MiB */
    size_t max_map_size;     /* bytes; 0 = 1 TiB */
    bool no_sync;            /* skip fsync (tests and benchmarks only) */
    unsigned max_readers;    /* 0 = 126 */
    /*
     * Open an existing store for reading only: nothing is created (neither
     * the folder nor the database), no lock is taken, and every write
     * (groups, schema changes) fails with HERALD_EBUSY.
     */
    bool read_only;
    /* Who writes ("herald serve"), recorded in the lock file so that a
     * refused writer can name it; NULL: "a Herald process". Copied. */
    const char *owner;
    /* Seconds an idempotency record answers retries; 0 = 24 hours. */
    double idem_retention;
} herald_store_options;

/* How long idempotency records are kept when the options do not say. */
#define HERALD_IDEM_RETENTION_DEFAULT (24.0 * 3600.0)

/* Binary document id: 4-byte table number (big-endian) and 16 random bytes. */
#define HERALD_ID_BYTES 20
/* Length of the text form of an id (base32, lowercase). */
#define HERALD_ID_CHARS 32

/*
 * Opens (creating if needed) the store in folder `path`, or with
 * `read_only` opens an existing one. `opts` may be NULL. On success *out
 * must be closed with herald_store_close(), which also releases the lock.
 * Errors: HERALD_EBUSY (another writer holds the folder; the message names
 * its owner and pid), HERALD_ENOTFOUND (read-only: no Herald database
 * there), HERALD_ECORRUPT (not a Herald database), HERALD_EIO, HERALD_ENOMEM.
 */
int herald_store_open(const char *path, const herald_store_options *opts, herald_store **out,
                      herald_error *err);
void herald_store_close(herald_store *s);

/*
 * The writer of data folder `path`, if one runs: returns 1 and sets *pid
 * and `owner` (NUL-terminated, cut to `size` bytes; "" when it did not say)
 * when a process holds the folder's writer lock, 0 when none does or the
 * folder has no lock file. Creates nothing and never blocks a writer for
 * longer than a system call. Returns HERALD_EIO when the lock file cannot
 * be read.
 */
int herald_store_writer(const char *path, long *pid, char *owner, size_t size, herald_error *err);

/*
 * The schema the store runs with: owned by the store, valid until
 * herald_store_close(), also after herald_store_set_schema() replaced it
 * (a replaced schema is kept for the threads still using it). NULL before a
 * schema was ever set. Another thread may replace it meanwhile: a caller
 * that needs the schema its snapshot sees reads it inside the snapshot.
 */
const herald_schema *herald_store_schema(const herald_store *s);

/*
 * Installs `schema` (the store takes ownership, also on failure). New
 * tables and indexes are created and backfilled, dropped indexes removed,
 * and every document of a table whose validator changed is checked; if any
 * violates the new schema nothing changes and the error names the table,
 * the first offending documents and the reason. Dropping a table that still
 * has documents is refused the same way. Must not be called while a group
 * is open. Safe while other threads read: validation and backfill run in
 * one write transaction that readers do not see (snapshots keep the old
 * data and schema; other writes wait); the commit and the switch to the new
 * schema happen together, with no read snapshot open (each holds the
 * store's map lock, which this takes exclusively for that moment).
 */
int herald_store_set_schema(herald_store *s, herald_schema *schema, herald_error *err);

/* The version of the last committed mutation (0 for a new store). */
uint64_t herald_store_version(herald_store *s);

/* Current and maximum map size, and bytes in use, for stats. */
void herald_store_map_info(herald_store *s, size_t *map_size, size_t *used, size_t *max);

/*
 * Writes a compacted copy of the database (LMDB's copy with MDB_CP_COMPACT:
 * free pages left out, pages renumbered) to `fd`, an empty file open for
 * writing, from one read snapshot that LMDB begins and ends inside this
 * call. Works on a store opened read-only, beside the folder's writer,
 * which keeps committing meanwhile: the snapshot holds the pages it reads,
 * so the writer's file grows instead of reusing them until the copy ends.
 * The caller fsyncs `fd`. Errors: HERALD_EIO (writing `fd`), HERALD_ENOMEM,
 * HERALD_ESTORE.
 */
int herald_store_copy(herald_store *s, int fd, herald_error *err);

/* ---- read snapshots -------------------------------------------------- */

/*
 * Begins a read-only snapshot of the last committed state. Its version is
 * herald_txn_version(). End it with herald_txn_end().
 */
int herald_read_begin(herald_store *s, herald_txn **out, herald_error *err);
void herald_txn_end(herald_txn *t);
uint64_t herald_txn_version(const herald_txn *t);

/* ---- write groups and mutations -------------------------------------- */

typedef struct herald_write_key {
    uint32_t index_id;
    uint8_t *key; /* full (untruncated) index key: values, creation time, id */
    size_t key_len;
} herald_write_key;

/*
 * What one mutation changed: for every written document, the old and the
 * new entry in each index of its table (including by_id and
 * by_creation_time). Owned by the group; valid until herald_group_free().
 */
typedef struct herald_write_set {
    uint64_t version;
    herald_write_key *removed;
    size_t nremoved;
    herald_write_key *added;
    size_t nadded;
    size_t ndocs; /* documents written */
} herald_write_set;

/*
 * The documents a write set changed, each once, in the order they were
 * first written: its table, its id's text form, and whether the mutation
 * inserted, updated or deleted it (a document inserted and deleted by the
 * same mutation is reported as an update). Strings are valid during the
 * call. Nothing is reported if memory runs out.
 */
typedef enum herald_change_op {
    HERALD_CHANGE_INSERT,
    HERALD_CHANGE_UPDATE,
    HERALD_CHANGE_DELETE
} herald_change_op;
typedef void (*herald_change_fn)(void *ctx, const char *table, const char *id, herald_change_op op);
void herald_write_set_changes(herald_store *s, const herald_write_set *ws, herald_change_fn fn,
                              void *ctx);
/* Whether the write set wrote a system table (`_storage`, `_scheduled_functions`): a scan
 * of its keys, no allocation, for callers that care only about those. */
bool herald_write_set_writes_system(herald_store *s, const herald_write_set *ws);

/* Opens the write transaction for a new group. */
int herald_group_begin(herald_store *s, herald_group **out, herald_error *err);

/*
 * Makes every committed mutation of the group durable with one LMDB commit.
 * On failure (HERALD_EIO, HERALD_EMAPFULL) none of the group's mutations
 * are kept. Either way the group must then be freed with
 * herald_group_free(); its write sets stay readable until then.
 */
int herald_group_commit(herald_group *g, herald_error *err);

/* Aborts an uncommitted group (all its mutations) and frees it. */
void herald_group_free(herald_group *g);

/* Committed mutations in this group, in order, and their write sets. */
size_t herald_group_count(const herald_group *g);
const herald_write_set *herald_group_write_set(const herald_group *g, size_t i);

/*
 * Begins a mutation inside the group (a nested transaction). Only one
 * mutation of a group may be open at a time. It sees the group's earlier
 * mutations and its own writes.
 */
int herald_mutation_begin(herald_group *g, herald_txn **out, herald_error *err);

/*
 * Commits the mutation into the group and gives it the next version
 * (*version, may be NULL). The mutation handle is freed.
 * On failure the mutation is rolled back and freed.
 */
int herald_mutation_commit(herald_txn *m, uint64_t *version, herald_error *err);

/* Rolls back and frees the mutation; the group goes on. */
void herald_mutation_abort(herald_txn *m);

/* ---- replication (docs/replication.md) --------------------------------
 *
 * A primary records what each mutation of a group wrote (its log) and
 * appends it to the replication stream before the group commits; a replica
 * applies those records in a group of its own: the same documents, indexes,
 * write sets and versions as on the primary.
 *
 * A log is a list of mutation records, each: 'M', version (u64), number
 * of changes (u32); then per change 'P' (a document stored: table name
 * (u8 length, bytes), binary id, u32 length, the stored encoding) or 'D'
 * (deleted: table name, binary id) or 'I' (an idempotency record: its
 * 32-byte key, u32 length, the record). Integers are big-endian.
 */

/* Starts recording the group's log (before its first mutation). */
void herald_group_log_start(herald_group *g);
/* The log of the group's committed mutations so far (NULL, *len 0 when none). */
const uint8_t *herald_group_log(const herald_group *g, size_t *len);
/*
 * Applies a log made by another store with the same schema history, one
 * mutation per record, each under the version it carries (which must be
 * newer than this store's). HERALD_ECORRUPT for a malformed log or a table
 * this store does not have; then nothing of the failing record is kept.
 */
int herald_group_apply_log(herald_group *g, const uint8_t *log, size_t len, herald_error *err);
/*
 * Aborts every mutation of an uncommitted group; nothing of it is kept (a
 * group that ran out of map grows the map for the next). Free it after.
 */
void herald_group_abort(herald_group *g);
/*
 * Store metadata of replication, numbers named "repl_...": set in a group,
 * written with its commit (also a group with no mutation); read from the
 * last commit (*v 0 when absent; HERALD_ECORRUPT when not a number).
 */
int herald_group_set_meta(herald_group *g, const char *name, uint64_t v, herald_error *err);
int herald_store_get_meta(herald_store *s, const char *name, uint64_t *v, herald_error *err);
/* The same, in a read snapshot (a backup's copy of the meta). */
int herald_txn_get_meta(herald_txn *t, const char *name, uint64_t *v, herald_error *err);

/*
 * Document writes; all validated against the schema. `doc` is borrowed.
 * insert writes the new id's text form into `id_out`
 * (HERALD_ID_CHARS + 1 bytes) when not NULL.
 * patch shallow-merges the fields of `fields` (an object); a field whose
 * value is HERALD_UNDEFINED is removed. System fields cannot be written.
 */
int herald_insert(herald_txn *m, const char *table, const herald_value *doc, char *id_out,
                  herald_error *err);
int herald_patch(herald_txn *m, const char *id, const herald_value *fields, herald_error *err);
int herald_replace(herald_txn *m, const char *id, const herald_value *doc, herald_error *err);
int herald_delete(herald_txn *m, const char *id, herald_error *err);

/*
 * Inserts a document that carries its own `_id` and `_creationTime`
 * (import). The id's table must be `table`. Fails if the id exists.
 */
int herald_insert_raw(herald_txn *m, const char *table, const herald_value *doc, herald_error *err);

/*
 * System tables (`_storage`) are written by Herald alone: insert, patch,
 * replace and delete refuse them (HERALD_EACCESS) unless the mutation was
 * allowed to with this (file storage does; herald_insert_raw, for import,
 * always may).
 */
void herald_txn_allow_system(herald_txn *m, bool allow);

/*
 * Reads a document by id into *out (a new tree with `_id` and
 * `_creationTime`, freed by the caller). Returns HERALD_ENOTFOUND when it
 * does not exist, and HERALD_EINVAL when `id` is not a well-formed id of
 * `table` (table may be NULL to accept any table). A read set, when given,
 * records the document (see query.h).
 */
struct herald_read_set;
int herald_get(herald_txn *t, const char *table, const char *id, herald_value *out,
               struct herald_read_set *rs, herald_error *err);

/* Name of the table an id belongs to (owned by the schema), or NULL. */
const char *herald_id_table(herald_txn *t, const char *id);

/* Number of documents in `table`. */
int herald_table_count(herald_txn *t, const char *table, uint64_t *count, herald_error *err);

/*
 * Checks that every index entry matches a document and every document has
 * exactly its entries in every index, that every document passes its
 * validator, and that every idempotency record has its time index entry.
 * Problems are written to `report` (may be NULL) one per line; returns
 * HERALD_ECORRUPT if there was any. Works on a read-only store.
 */
typedef void (*herald_report_fn)(void *ctx, const char *line);
int herald_store_check(herald_store *s, herald_report_fn report, void *ctx, herald_error *err);

/* Calls `fn` for every document of `table` in id order, in one snapshot. */
typedef int (*herald_doc_fn)(void *ctx, const herald_value *doc);
int herald_table_scan(herald_txn *t, const char *table, herald_doc_fn fn, void *ctx,
                      herald_error *err);

/*
 * Idempotency records: a mutation that carries an idempotency key records
 * its result under it, in the same transaction as its writes, so that a
 * retry of an already committed mutation can return the first result (and
 * version) instead of applying it twice.
 *
 * A key belongs to a scope, the caller (bytes the caller's code chooses:
 * Herald's server uses the signed-in user's issuer and subject, the admin
 * key, or one scope shared by anonymous callers): records of different
 * scopes never meet. Within a scope, a record also remembers the request
 * it answered (the function and its arguments, or the raw operations, as
 * bytes); the same key with another request is a conflict, never a replay.
 * Only a digest (SHA-256) of scope, key and request is stored.
 *
 * A record answers for the store's retention (herald_store_options
 * `idem_retention`), counted from its commit by the wall clock; after that
 * it is as if it did not exist, and herald_idem_purge() deletes it.
 */
#define HERALD_MAX_IDEM_KEY 200
typedef struct herald_idem {
    const char *key; /* 1 to HERALD_MAX_IDEM_KEY bytes, NUL-terminated */
    const void *scope;
    size_t scope_len;
    const void *request;
    size_t request_len;
} herald_idem;

/*
 * Looks `req` up. Returns 0 with the first *result (a new tree, freed by
 * the caller) and *version when a live record of the same request exists;
 * HERALD_ENOTFOUND when there is none in the scope (or it expired);
 * HERALD_ECONFLICT when the scope's record of this key answered another
 * request; HERALD_EINVAL for a key of the wrong size; HERALD_ECORRUPT.
 * *result is HERALD_UNDEFINED unless 0 is returned.
 */
int herald_idem_get(herald_txn *t, const herald_idem *req, herald_value *result, uint64_t *version,
                    herald_error *err);

/*
 * Records `result` for `req` in mutation `m`, with the version the mutation
 * gets if it commits; replaces an expired record of the same key and scope.
 */
int herald_idem_put(herald_txn *m, const herald_idem *req, const herald_value *result,
                    herald_error *err);

/*
 * Deletes up to `max` expired records, oldest first, in group `g` (while no
 * mutation of it is open). Records are indexed by time, so the cost is that
 * of the records deleted, never of those kept. *purged (may be NULL) gets
 * the number deleted. On failure nothing is deleted and the group goes on.
 */
int herald_idem_purge(herald_group *g, size_t max, size_t *purged, herald_error *err);

/* Number of idempotency records stored, expired or not. */
int herald_idem_count(herald_txn *t, uint64_t *count, herald_error *err);

/* Table numbers, for export/import that keeps ids. */
int herald_table_number(herald_txn *t, const char *table, uint32_t *number);
int herald_store_reserve_table(herald_store *s, const char *table, uint32_t number,
                               herald_error *err);

#ifdef __cplusplus
}
#endif
#endif
