/*
 * Private structures of the store, shared by store.c (environment, schema,
 * registry, check), txn.c (groups, mutations, document writes), index.c
 * (index keys and scans) and query.c.
 */
#ifndef HD_STORE_PRIV_H
#define HD_STORE_PRIV_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "buf.h"
#include "fts.h"
#include "herald/query.h"
#include "herald/store.h"

/* LMDB's key limit, and the part of it an index entry's values may use. */
#define HD_MAX_KEY    511
#define HD_IID_BYTES  4
#define HD_MAX_VALUES (HD_MAX_KEY - HD_IID_BYTES - HERALD_ID_BYTES)

typedef enum hd_index_kind {
    HD_INDEX_BY_ID,
    HD_INDEX_BY_CREATION_TIME,
    HD_INDEX_USER,
} hd_index_kind;

typedef struct hd_index {
    uint32_t id;
    hd_index_kind kind;
    const char *name;    /* owned by the schema, or a static string */
    char *const *fields; /* owned by the schema; NULL for system indexes */
    size_t nfields;
} hd_index;

typedef struct hd_table {
    const herald_table_def *def; /* owned by the store's schema */
    uint32_t number;
    hd_index *indexes; /* [0] by_id, [1] by_creation_time, then user indexes */
    size_t nindexes;
} hd_table;

struct herald_store {
    MDB_env *env;
    MDB_dbi meta, docs, idx;
    /* Idempotency records by digest, and the same digests by time (txn.c). */
    MDB_dbi idem, idem_time;
    bool has_idem;  /* false in a read-only store written before they existed */
    bool read_only; /* herald_store_options.read_only */
    int lock_fd;    /* holds the folder's writer lock; -1 when read-only */
    double idem_retention_ms;
    herald_schema *schema;
    hd_table *tables; /* parallel to schema->tables */
    size_t ntables;
    size_t map_size, max_map_size;
    bool no_sync;
    _Atomic uint64_t version;
    /* Readers hold it shared; growing the map holds it exclusively. */
    pthread_rwlock_t map_lock;
    herald_group *open_group;
    /* Packed vector index rows (vector.c), made by the first search or commit. */
    _Atomic(struct hd_vecstore *) vec;
    struct hd_fts *fts; /* search indexes (fts.c); NULL before a schema */
    /* Schemas and their runtime tables replaced by herald_store_set_schema():
     * kept until the store closes, for the threads that still hold them. */
    struct hd_retired *retired;
};

/* A metadata key and number a group writes with its commit (big-endian, 8 bytes). */
struct hd_meta_put {
    struct hd_meta_put *next;
    char name[32];
    uint8_t v[8];
};

typedef struct hd_keys {
    herald_write_key *v;
    size_t len, cap;
} hd_keys;

struct herald_txn {
    herald_store *s;
    MDB_txn *txn;
    herald_group *group; /* NULL for a read snapshot */
    uint64_t version;    /* snapshot version */
    hd_keys removed, added;
    size_t ndocs;
    bool system; /* may write the system tables (herald_txn_allow_system) */
    /* The mutation's replication log (its changes), kept while the group logs. */
    hd_buf log;
    uint32_t nlogged;
};

struct herald_group {
    herald_store *s;
    MDB_txn *txn;
    herald_txn *open_mutation;
    herald_write_set *sets;
    size_t nsets, cap;
    uint64_t version; /* last version handed out */
    double last_ct;   /* last _creationTime handed out */
    bool map_full;    /* a mutation ran out of map: grow after commit */
    /* Replication (herald_group_log_start): the log of committed mutations, and
     * metadata written with the commit (herald_group_set_meta). */
    bool logging;
    hd_buf log;
    struct hd_meta_put *meta;
    /* Random bytes for new ids, drawn from OpenSSL a page at a time. */
    uint8_t random[4096];
    size_t random_used;
    bool done;
};

/* ---- store.c ---- */
const hd_table *hd__table_by_name(const herald_store *s, const char *name);
const hd_table *hd__table_by_number(const herald_store *s, uint32_t number);
const hd_index *hd__index_by_name(const hd_table *t, const char *name);
/* Maps an LMDB return code to a Herald code with a message. */
int hd__mdb_fail(herald_error *err, int rc, const char *what);
/* Deletes every key of `dbi` that starts with `prefix` (n bytes). */
int hd__delete_prefix(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t n);
/* HERALD_EBUSY when `s` was opened read-only: `what` is the refused write. */
int hd__store_writable(const herald_store *s, const char *what, herald_error *err);

/* ---- txn.c ---- */
/* Id text form <-> binary. Returns false on a malformed id. */
bool hd__id_parse(const char *text, size_t len, uint8_t id[HERALD_ID_BYTES]);
void hd__id_format(const uint8_t id[HERALD_ID_BYTES], char out[HERALD_ID_CHARS + 1]);
/* Table name of a text id, or NULL (an hd_id_table_fn; `store` is the herald_store). */
const char *hd__resolve_id(void *store, const char *id, size_t len);
/* Decodes a stored document and adds `_id`. */
int hd__doc_decode(const uint8_t id[HERALD_ID_BYTES], const MDB_val *data, herald_value *out,
                   herald_error *err);
/*
 * Checks that every idempotency record has its entry in the time index and
 * the reverse; each problem goes to `problem` (a line), and *records gets
 * the number of records. Returns 0 or an LMDB failure as a Herald code.
 */
int hd__idem_check(herald_txn *t, void (*problem)(void *ctx, const char *line), void *ctx,
                   uint64_t *records, herald_error *err);

/* ---- index.c ---- */
/*
 * Appends the full key of `doc` (which carries _creationTime) in index `ix`:
 * iid, the encoded values and creation time, the binary id.
 */
void hd__index_key(hd_buf *out, const hd_index *ix, const herald_value *doc,
                   const uint8_t id[HERALD_ID_BYTES]);
/* Writes or removes a document's entry in every index but by_id. */
int hd__index_put(herald_txn *t, const hd_table *tab, const herald_value *doc,
                  const uint8_t id[HERALD_ID_BYTES], bool add, hd_keys *record, herald_error *err);
/* Appends a copy of a key to a key list. */
int hd__keys_push(hd_keys *k, uint32_t index_id, const uint8_t *key, size_t len);
void hd__keys_free(hd_keys *k);
/* Smallest byte string greater than every string that starts with `p`. */
void hd__key_successor(hd_buf *b);

/*
 * An index scan over full keys in [lo, hi) (hi NULL: to the end of the
 * index), ascending or descending. Entries come out in full-key order,
 * also when stored keys had to be truncated.
 */
typedef struct hd_scan_entry {
    uint8_t *key; /* full key */
    size_t key_len;
    herald_value doc;
} hd_scan_entry;

typedef struct hd_scan hd_scan;
int hd__scan_open(herald_txn *t, const hd_table *tab, const hd_index *ix, const uint8_t *lo,
                  size_t lo_len, const uint8_t *hi, size_t hi_len, bool desc, hd_scan **out,
                  herald_error *err);
/*
 * Next entry into *e (owned by the scan until the next call). Returns 1
 * with an entry, 0 at the end, or a negative code. *bytes_read grows by the
 * stored bytes read.
 */
int hd__scan_next(hd_scan *sc, hd_scan_entry **e, size_t *bytes_read, herald_error *err);
void hd__scan_close(hd_scan *sc);

/* Adds a copy of [lo, hi) of index `iid` to a read set. */
int hd__read_set_add(herald_read_set *rs, uint32_t iid, const uint8_t *lo, size_t lo_len,
                     const uint8_t *hi, size_t hi_len);

static inline void hd__put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline uint32_t hd__get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
