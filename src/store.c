/*
 * The store: the LMDB environment of a data folder, its registry of tables
 * and indexes, schema changes, read snapshots and the consistency check.
 *
 * Layout of the environment:
 *   meta  "version" -> u64, "schema" -> canonical schema JSON,
 *         "t:<table>" -> u32 table number, "next_table" -> u32,
 *         "i:<table>/<index>" -> u32 index id + field list, "next_index" -> u32
 *   docs  20-byte id -> encoded document (keycodec), without `_id`
 *   idx   index id, encoded values + creation time, id -> (empty)
 *   idem, idem_time   idempotency records (txn.c)
 * This module must never leave the registry and the data out of step: every
 * change to both happens in one LMDB transaction. It also keeps a data
 * folder to one writer (`herald.lock`), and must never create anything for
 * a store opened read-only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keycodec.h"
#include "schema_priv.h"
#include "store_priv.h"
#include "vector.h"

#define DEFAULT_MAP_SIZE ((size_t)64 << 20)
#define DEFAULT_MAX_MAP  ((size_t)1 << 40)

int hd__mdb_fail(herald_error *err, int rc, const char *what)
{
    switch (rc) {
    case MDB_MAP_FULL:
        return herald_fail(err, HERALD_EMAPFULL, "%s: the database is full (map size limit)", what);
    case ENOMEM:
        return herald_fail(err, HERALD_ENOMEM, "%s: out of memory", what);
    case ENOSPC:
    case EIO:
        return herald_fail(err, HERALD_EIO, "%s: %s", what, mdb_strerror(rc));
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
        return herald_fail(err, HERALD_ECORRUPT, "%s: %s", what, mdb_strerror(rc));
    default:
        return herald_fail(err, HERALD_ESTORE, "%s: %s", what, mdb_strerror(rc));
    }
}

int hd__store_writable(const herald_store *s, const char *what, herald_error *err)
{
    if (!s->read_only) return 0;
    return herald_fail(err, HERALD_EBUSY, "%s: the store is open read-only", what);
}

const hd_table *hd__table_by_name(const herald_store *s, const char *name)
{
    if (!s->schema) return NULL;
    if (name[0] == '_') {
        /* The system tables follow the schema's. */
        for (size_t i = s->schema->ntables; i < s->ntables; i++)
            if (!strcmp(s->tables[i].def->name, name)) return &s->tables[i];
        return NULL;
    }
    const herald_table_def *def = herald_schema_table(s->schema, name);
    if (!def) return NULL;
    return &s->tables[def - s->schema->tables];
}

const hd_table *hd__table_by_number(const herald_store *s, uint32_t number)
{
    for (size_t i = 0; i < s->ntables; i++)
        if (s->tables[i].number == number) return &s->tables[i];
    return NULL;
}

const hd_index *hd__index_by_name(const hd_table *t, const char *name)
{
    for (size_t i = 0; i < t->nindexes; i++)
        if (strcmp(t->indexes[i].name, name) == 0) return &t->indexes[i];
    return NULL;
}

static void free_tables(hd_table *tables, size_t n)
{
    if (!tables) return;
    for (size_t i = 0; i < n; i++)
        free(tables[i].indexes);
    free(tables);
}

/*
 * A schema replaced while the store is open. Threads hold the store's schema
 * and table pointers past any lock (function runtimes, parsed queries and
 * subscriptions keep `const herald_schema *`), so a replaced schema lives on
 * until herald_store_close(): schema changes are rare operator actions and
 * cost a few kilobytes each. Keeping the address alive also means a stale
 * pointer never compares equal to a new schema at the same address.
 */
typedef struct hd_retired {
    struct hd_retired *next;
    herald_schema *schema;
    hd_table *tables;
    size_t ntables;
} hd_retired;

/* ---- meta helpers ---- */

static int meta_get_u32(herald_store *s, MDB_txn *txn, const char *key, uint32_t *out, bool *found)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    *found = rc == 0;
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    if (v.mv_size < 4) return MDB_CORRUPTED;
    *out = hd__get_be32(v.mv_data);
    return 0;
}

static int meta_put(herald_store *s, MDB_txn *txn, const char *key, const void *p, size_t n)
{
    MDB_val k = {strlen(key), (void *)key}, v = {n, (void *)p};
    return mdb_put(txn, s->meta, &k, &v, 0);
}

static int meta_put_u32(herald_store *s, MDB_txn *txn, const char *key, uint32_t x)
{
    uint8_t b[4];
    hd__put_be32(b, x);
    return meta_put(s, txn, key, b, 4);
}

/* Next number of a counter in meta ("next_table", "next_index"), starting at 1. */
static int meta_next(herald_store *s, MDB_txn *txn, const char *counter, uint32_t *out)
{
    uint32_t n = 1;
    bool found;
    int rc = meta_get_u32(s, txn, counter, &n, &found);
    if (rc) return rc;
    if (!found) n = 1;
    *out = n;
    return meta_put_u32(s, txn, counter, n + 1);
}

/* The registry value of an index: its id and a fingerprint of its fields. */
static void index_fingerprint(hd_buf *b, uint32_t id, char *const *fields, size_t n)
{
    uint8_t idb[4];
    hd__put_be32(idb, id);
    hd__buf_append(b, idb, 4);
    for (size_t i = 0; i < n; i++) {
        hd__buf_str(b, fields[i]);
        hd__buf_byte(b, 0);
    }
}

typedef struct registry_ctx {
    herald_store *s;
    MDB_txn *txn;
    bool create; /* assign numbers to what is missing (else: missing is corrupt) */
    bool create_system; /* the same for the system tables (a writable store) */
    uint32_t *new_ids;
    size_t nnew, capnew;
} registry_ctx;

static int register_table(registry_ctx *r, const herald_table_def *def, uint32_t *number)
{
    char key[300];
    snprintf(key, sizeof key, "t:%s", def->name);
    bool found;
    int rc = meta_get_u32(r->s, r->txn, key, number, &found);
    if (rc || found) return rc;
    if (!r->create) return MDB_CORRUPTED;
    rc = meta_next(r->s, r->txn, "next_table", number);
    return rc ? rc : meta_put_u32(r->s, r->txn, key, *number);
}

static int register_index(registry_ctx *r, const char *table, hd_index *ix)
{
    char key[600];
    snprintf(key, sizeof key, "i:%s/%s", table, ix->name);
    MDB_val k = {strlen(key), key}, v;
    hd_buf want = HD_BUF_INIT;
    index_fingerprint(&want, 0, ix->fields, ix->nfields);
    if (want.failed) return ENOMEM;
    int rc = mdb_get(r->txn, r->s->meta, &k, &v);
    if (rc == 0 && v.mv_size == want.len &&
        memcmp((uint8_t *)v.mv_data + 4, want.p + 4, want.len - 4) == 0) {
        ix->id = hd__get_be32(v.mv_data);
        hd__buf_free(&want);
        return 0;
    }
    if (rc && rc != MDB_NOTFOUND) goto done;
    /* New, or redefined with other fields: a new id (the old one is dropped). */
    rc = MDB_CORRUPTED;
    if (!r->create) goto done;
    rc = meta_next(r->s, r->txn, "next_index", &ix->id);
    if (rc) goto done;
    hd__put_be32(want.p, ix->id);
    v = (MDB_val){want.len, want.p};
    rc = mdb_put(r->txn, r->s->meta, &k, &v, 0);
    if (rc) goto done;
    if (r->nnew == r->capnew) {
        size_t cap = r->capnew ? r->capnew * 2 : 8;
        uint32_t *p = realloc(r->new_ids, cap * sizeof *p);
        if (!p) {
            rc = ENOMEM;
            goto done;
        }
        r->new_ids = p;
        r->capnew = cap;
    }
    r->new_ids[r->nnew++] = ix->id;
done:
    hd__buf_free(&want);
    return rc;
}

/*
 * Builds the runtime tables of `schema`, then of the system tables (which
 * every store has: hd__system_schema()), registering what is new when
 * r->create; *n is how many. A read-only store written before a system
 * table existed goes without it.
 */
static int build_tables(registry_ctx *r, const herald_schema *schema, hd_table **out, size_t *n)
{
    const herald_schema *sys = hd__system_schema();
    if (!sys) return ENOMEM;
    size_t total = schema->ntables + sys->ntables;
    hd_table *tables = calloc(total, sizeof *tables);
    if (!tables) return ENOMEM;
    int rc = 0;
    size_t i;
    for (i = 0; i < total && !rc; i++) {
        const herald_table_def *def =
            i < schema->ntables ? &schema->tables[i] : &sys->tables[i - schema->ntables];
        hd_table *t = &tables[i];
        t->def = def;
        t->nindexes = 2 + def->nindexes;
        t->indexes = calloc(t->nindexes, sizeof *t->indexes);
        if (!t->indexes) {
            rc = ENOMEM;
            break;
        }
        t->indexes[0] = (hd_index){.kind = HD_INDEX_BY_ID, .name = "by_id"};
        t->indexes[1] = (hd_index){.kind = HD_INDEX_BY_CREATION_TIME, .name = "by_creation_time"};
        for (size_t j = 0; j < def->nindexes; j++)
            t->indexes[2 + j] = (hd_index){.kind = HD_INDEX_USER,
                                           .name = def->indexes[j].name,
                                           .fields = def->indexes[j].fields,
                                           .nfields = def->indexes[j].nfields};
        bool create = r->create;
        if (def->system) r->create = create || r->create_system;
        rc = register_table(r, def, &t->number);
        for (size_t j = 0; j < t->nindexes && !rc; j++)
            rc = register_index(r, def->name, &t->indexes[j]);
        r->create = create;
        if (rc == MDB_CORRUPTED && def->system && !r->create_system) {
            free(t->indexes);
            t->indexes = NULL;
            rc = 0;
            break;
        }
    }
    if (rc) {
        free_tables(tables, total);
        return rc;
    }
    *out = tables;
    *n = i;
    return 0;
}

static void set_error_from_mdb(herald_error *err, int rc, const char *what)
{
    hd__mdb_fail(err, rc, what);
}

/*
 * Deletes every key of `dbi` that starts with `prefix`. Each round seeks
 * afresh: a cursor whose delete emptied the database has no current item
 * (LMDB answers EINVAL, not MDB_NOTFOUND).
 */
int hd__delete_prefix(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t n)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc) return rc;
    for (;;) {
        MDB_val k = {n, (void *)prefix}, v;
        if ((rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE))) break;
        if (k.mv_size < n || memcmp(k.mv_data, prefix, n) != 0) break;
        if ((rc = mdb_cursor_del(cur, 0))) break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ---- the writer lock ---- */

#define LOCK_FILE "herald.lock"

/*
 * Reads "<pid> <owner>" from a lock file. The holder writes it just after
 * taking the lock, so an empty file is given a moment to fill.
 */
static void read_holder(int fd, long *pid, char *owner, size_t size)
{
    char buf[256];
    ssize_t n = 0;
    for (int i = 0; i < 50 && (n = pread(fd, buf, sizeof buf - 1, 0)) <= 0; i++)
        usleep(1000);
    buf[n > 0 ? n : 0] = 0;
    char *end;
    *pid = strtol(buf, &end, 10);
    if (end == buf || *pid < 0) *pid = 0;
    while (*end == ' ')
        end++;
    end[strcspn(end, "\n")] = 0;
    if (size) snprintf(owner, size, "%s", end);
}

static int take_lock(herald_store *s, const char *path, const char *owner, herald_error *err)
{
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/" LOCK_FILE, path);
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return herald_fail(err, HERALD_EIO, "cannot open %s: %s", lp, strerror(errno));
    /* herald_store_writer() holds the lock shared for a system call: retry briefly. */
    int rc;
    for (int i = 0; (rc = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EWOULDBLOCK && i < 20; i++)
        usleep(1000);
    if (rc != 0 && errno != EWOULDBLOCK) {
        rc = herald_fail(err, HERALD_EIO, "cannot lock %s: %s", lp, strerror(errno));
    } else if (rc != 0) {
        long pid;
        char who[128], pidtext[40] = "pid unknown";
        read_holder(fd, &pid, who, sizeof who);
        if (pid) snprintf(pidtext, sizeof pidtext, "pid %ld", pid);
        rc = herald_fail(err, HERALD_EBUSY,
                         "the data folder %s is in use by %s (%s); one writer at a time: stop it "
                         "first (get, query, export and check work beside it)",
                         path, who[0] ? who : "another Herald process", pidtext);
    } else {
        char line[200];
        int n = snprintf(line, sizeof line, "%ld %.150s\n", (long)getpid(),
                         owner ? owner : "a Herald process");
        if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n)
            rc = herald_fail(err, HERALD_EIO, "cannot write %s: %s", lp, strerror(errno));
    }
    if (rc) {
        close(fd); /* drops the lock if it was taken */
        return rc;
    }
    s->lock_fd = fd;
    return 0;
}

int herald_store_writer(const char *path, long *pid, char *owner, size_t size, herald_error *err)
{
    *pid = 0;
    if (size) owner[0] = 0;
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/" LOCK_FILE, path);
    int fd = open(lp, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR
                   ? 0
                   : herald_fail(err, HERALD_EIO, "cannot open %s: %s", lp, strerror(errno));
    int rc = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        flock(fd, LOCK_UN);
    } else if (errno == EWOULDBLOCK) {
        read_holder(fd, pid, owner, size);
        rc = 1;
    } else {
        rc = herald_fail(err, HERALD_EIO, "cannot lock %s: %s", lp, strerror(errno));
    }
    close(fd);
    return rc;
}

/* A read-only open finds no database (or one still being created). */
static int no_database(herald_error *err, const char *path)
{
    return herald_fail(err, HERALD_ENOTFOUND, "no Herald database in %s", path);
}

int herald_store_open(const char *path, const herald_store_options *opts, herald_store **out,
                      herald_error *err)
{
    herald_store_options o = opts ? *opts : (herald_store_options){0};
    herald_store *s = calloc(1, sizeof *s);
    if (!s) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    s->lock_fd = -1;
    s->read_only = o.read_only;
    s->idem_retention_ms =
        1000.0 * (o.idem_retention > 0 ? o.idem_retention : HERALD_IDEM_RETENTION_DEFAULT);
    s->max_map_size = o.max_map_size ? o.max_map_size : DEFAULT_MAX_MAP;
    s->map_size = o.initial_map_size ? o.initial_map_size : DEFAULT_MAP_SIZE;
    if (s->map_size > s->max_map_size) s->map_size = s->max_map_size;
    s->no_sync = o.no_sync;
    pthread_rwlock_init(&s->map_lock, NULL);
    int rc;
    MDB_txn *txn = NULL;
    struct stat st;
    char file[4200];
    snprintf(file, sizeof file, "%s/data.mdb", path);
    if (s->read_only) {
        if (stat(file, &st) != 0 || st.st_size == 0) {
            rc = no_database(err, path);
            goto fail;
        }
    } else {
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            rc = herald_fail(err, HERALD_EIO, "cannot create data folder %s: %s", path,
                             strerror(errno));
            goto fail;
        }
        if ((rc = take_lock(s, path, o.owner, err))) goto fail;
    }
    if ((rc = mdb_env_create(&s->env))) goto mdb_fail;
    mdb_env_set_maxdbs(s->env, 8);
    mdb_env_set_maxreaders(s->env, o.max_readers ? o.max_readers : 126);
    /* A reader maps the size the writer recorded in the file. */
    if (!s->read_only && (rc = mdb_env_set_mapsize(s->env, s->map_size))) goto mdb_fail;
    unsigned flags = MDB_NOTLS | (s->no_sync ? MDB_NOSYNC : 0) | (s->read_only ? MDB_RDONLY : 0);
    if ((rc = mdb_env_open(s->env, path, flags, 0600))) {
        if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
            rc = herald_fail(err, HERALD_ECORRUPT, "%s does not hold a Herald database: %s", path,
                             mdb_strerror(rc));
        else if (s->read_only && rc == ENOENT)
            rc = no_database(err, path);
        else
            rc = herald_fail(err, HERALD_EIO, "cannot open the database in %s: %s", path,
                             mdb_strerror(rc));
        goto fail;
    }
    /* Reader slots of processes that died (a killed `herald query`) would
     * keep LMDB from reusing pages: clear them now. */
    int dead_readers = 0;
    mdb_reader_check(s->env, &dead_readers);
    /* An existing file may be larger than the map we asked for. */
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->map_size = info.me_mapsize;
    if ((rc = mdb_txn_begin(s->env, NULL, s->read_only ? MDB_RDONLY : 0, &txn))) goto mdb_fail;
    unsigned create = s->read_only ? 0 : MDB_CREATE;
    if ((rc = mdb_dbi_open(txn, "meta", create, &s->meta)) ||
        (rc = mdb_dbi_open(txn, "docs", create, &s->docs)) ||
        (rc = mdb_dbi_open(txn, "idx", create, &s->idx))) {
        /* A writer killed before its first commit leaves an empty file. */
        if (rc == MDB_NOTFOUND && s->read_only) {
            rc = no_database(err, path);
            goto fail;
        }
        goto mdb_fail;
    }
    rc = mdb_dbi_open(txn, "idem", create, &s->idem);
    if (!rc) rc = mdb_dbi_open(txn, "idem_time", create, &s->idem_time);
    s->has_idem = rc == 0;
    /* A store written before idempotency records had scopes has none to read. */
    if (rc && !(rc == MDB_NOTFOUND && s->read_only)) goto mdb_fail;
    /* Those records ("k:<key>" in meta) answered any caller: they cannot be
     * given a scope, so they go. */
    if (!s->read_only && (rc = hd__delete_prefix(txn, s->meta, "k:", 2))) goto mdb_fail;
    MDB_val k = {7, "version"}, v;
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == 0 && v.mv_size == 8) {
        uint64_t ver;
        memcpy(&ver, v.mv_data, 8);
        s->version = ver;
    } else if (rc != MDB_NOTFOUND && rc != 0) {
        goto mdb_fail;
    }
    k = (MDB_val){6, "schema"};
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == 0) {
        if ((rc = herald_schema_from_json(v.mv_data, v.mv_size, "stored schema", &s->schema, err)))
            goto fail;
        /* A writable store registers system tables it did not have yet (empty). */
        registry_ctx r = {.s = s, .txn = txn, .create = false, .create_system = !s->read_only};
        rc = build_tables(&r, s->schema, &s->tables, &s->ntables);
        free(r.new_ids);
        if (rc) goto mdb_fail;
        /* Search indexes without postings (an older store) are built now. */
        if ((rc = hd__fts_load(s, txn, s->tables, s->ntables, !s->read_only, &s->fts, err)))
            goto fail;
    } else if (rc != MDB_NOTFOUND) {
        goto mdb_fail;
    }
    if ((rc = mdb_txn_commit(txn))) {
        txn = NULL;
        goto mdb_fail;
    }
    *out = s;
    return 0;
mdb_fail:
    set_error_from_mdb(err, rc, "opening the database");
    rc = err ? err->code : HERALD_ESTORE;
    if (rc == 0) rc = HERALD_ESTORE;
fail:
    if (txn) mdb_txn_abort(txn);
    herald_store_close(s);
    return rc;
}

void herald_store_close(herald_store *s)
{
    if (!s) return;
    if (s->env) mdb_env_close(s->env);
    /* Only now may the next writer start. */
    if (s->lock_fd >= 0) close(s->lock_fd);
    free_tables(s->tables, s->ntables);
    hd__fts_free(s->fts);
    hd__vector_free(atomic_load(&s->vec));
    herald_schema_free(s->schema);
    for (hd_retired *r = s->retired, *next; r; r = next) {
        next = r->next;
        free_tables(r->tables, r->ntables);
        herald_schema_free(r->schema);
        free(r);
    }
    pthread_rwlock_destroy(&s->map_lock);
    free(s);
}

const herald_schema *herald_store_schema(const herald_store *s)
{
    /* Other threads read it while the writer may replace it (set_schema). */
    return __atomic_load_n(&s->schema, __ATOMIC_ACQUIRE);
}

uint64_t herald_store_version(herald_store *s)
{
    return atomic_load(&s->version);
}

void herald_store_map_info(herald_store *s, size_t *map_size, size_t *used, size_t *max)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    if (map_size) *map_size = info.me_mapsize;
    if (used) *used = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
    if (max) *max = s->max_map_size;
}

/*
 * Called with the map lock held shared after `*rc` came back from beginning
 * a read: when it says the writer, in another process, grew the map
 * (MDB_MAP_RESIZED), adopts the new size and returns true (retry), the
 * lock held shared again; *rc is the failure when the size cannot be taken.
 */
static bool adopt_map_size(herald_store *s, int *rc)
{
    if (*rc != MDB_MAP_RESIZED || !s->read_only) return false;
    pthread_rwlock_unlock(&s->map_lock);
    pthread_rwlock_wrlock(&s->map_lock);
    *rc = mdb_env_set_mapsize(s->env, 0);
    pthread_rwlock_unlock(&s->map_lock);
    pthread_rwlock_rdlock(&s->map_lock);
    return *rc == 0;
}

int herald_store_copy(herald_store *s, int fd, herald_error *err)
{
    pthread_rwlock_rdlock(&s->map_lock);
    int rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    if (adopt_map_size(s, &rc)) rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    pthread_rwlock_unlock(&s->map_lock);
    return rc ? hd__mdb_fail(err, rc, "copying the database") : 0;
}

/* ---- read snapshots ---- */

int herald_read_begin(herald_store *s, herald_txn **out, herald_error *err)
{
    herald_txn *t = calloc(1, sizeof *t);
    if (!t) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    pthread_rwlock_rdlock(&s->map_lock);
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn);
    if (adopt_map_size(s, &rc)) rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn);
    if (rc) {
        pthread_rwlock_unlock(&s->map_lock);
        free(t);
        return hd__mdb_fail(err, rc, "beginning a read");
    }
    t->s = s;
    MDB_val k = {7, "version"}, v;
    if (mdb_get(t->txn, s->meta, &k, &v) == 0 && v.mv_size == 8) memcpy(&t->version, v.mv_data, 8);
    *out = t;
    return 0;
}

void herald_txn_end(herald_txn *t)
{
    if (!t) return;
    if (t->group) {
        herald_mutation_abort(t);
        return;
    }
    mdb_txn_abort(t->txn);
    pthread_rwlock_unlock(&t->s->map_lock);
    free(t);
}

uint64_t herald_txn_version(const herald_txn *t)
{
    return t->version;
}

/* ---- per-table helpers ---- */

static void table_prefix(uint8_t p[4], const hd_table *t)
{
    hd__put_be32(p, t->number);
}

int herald_table_scan(herald_txn *t, const char *table, herald_doc_fn fn, void *ctx,
                      herald_error *err)
{
    const hd_table *tab = hd__table_by_name(t->s, table);
    if (!tab) return herald_fail(err, HERALD_ENOTFOUND, "no table `%s`", table);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, t->s->docs, &cur);
    if (rc) return hd__mdb_fail(err, rc, "scanning a table");
    uint8_t prefix[4];
    table_prefix(prefix, tab);
    MDB_val k = {4, prefix}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != HERALD_ID_BYTES || memcmp(k.mv_data, prefix, 4) != 0) break;
        herald_value doc;
        int r = hd__doc_decode(k.mv_data, &v, &doc, err);
        if (r) {
            mdb_cursor_close(cur);
            return r;
        }
        r = fn(ctx, &doc);
        herald_value_free(&doc);
        if (r) {
            mdb_cursor_close(cur);
            return r;
        }
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND && rc != 0) return hd__mdb_fail(err, rc, "scanning a table");
    return 0;
}

static int count_fn(void *ctx, const herald_value *doc)
{
    (void)doc;
    (*(uint64_t *)ctx)++;
    return 0;
}

int herald_table_count(herald_txn *t, const char *table, uint64_t *count, herald_error *err)
{
    *count = 0;
    return herald_table_scan(t, table, count_fn, count, err);
}

int herald_table_number(herald_txn *t, const char *table, uint32_t *number)
{
    const hd_table *tab = hd__table_by_name(t->s, table);
    if (!tab) return HERALD_ENOTFOUND;
    *number = tab->number;
    return 0;
}

int herald_store_reserve_table(herald_store *s, const char *table, uint32_t number,
                               herald_error *err)
{
    if (s->open_group) return herald_fail(err, HERALD_EBUSY, "a write group is open");
    int rc = hd__store_writable(s, "reserving a table number", err);
    if (rc) return rc;
    char key[300];
    snprintf(key, sizeof key, "t:%s", table);
    MDB_txn *txn;
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return hd__mdb_fail(err, rc, "reserving a table number");
    uint32_t have, next = 1;
    bool found, nfound;
    if ((rc = meta_get_u32(s, txn, key, &have, &found))) goto mdb_fail;
    if (found) {
        mdb_txn_abort(txn);
        if (have == number) return 0;
        return herald_fail(err, HERALD_ESCHEMA, "table `%s` already has number %u, not %u", table,
                           have, number);
    }
    /* The number must not belong to another table. */
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, s->meta, &cur))) goto mdb_fail;
    MDB_val k = {2, "t:"}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 2 || memcmp(k.mv_data, "t:", 2) != 0) break;
        if (v.mv_size == 4 && hd__get_be32(v.mv_data) == number) {
            mdb_cursor_close(cur);
            mdb_txn_abort(txn);
            return herald_fail(err, HERALD_ESCHEMA, "table number %u is taken by `%.*s`", number,
                               (int)k.mv_size - 2, (char *)k.mv_data + 2);
        }
    }
    mdb_cursor_close(cur);
    if ((rc = meta_get_u32(s, txn, "next_table", &next, &nfound))) goto mdb_fail;
    if (!nfound) next = 1;
    if ((rc = meta_put_u32(s, txn, key, number))) goto mdb_fail;
    if (number >= next && (rc = meta_put_u32(s, txn, "next_table", number + 1))) goto mdb_fail;
    if ((rc = mdb_txn_commit(txn))) return hd__mdb_fail(err, rc, "reserving a table number");
    return 0;
mdb_fail:
    mdb_txn_abort(txn);
    return hd__mdb_fail(err, rc, "reserving a table number");
}

/* ---- schema changes ---- */

static int delete_index_entries(herald_store *s, MDB_txn *txn, uint32_t iid)
{
    uint8_t prefix[4];
    hd__put_be32(prefix, iid);
    return hd__delete_prefix(txn, s->idx, prefix, 4);
}

/* Removes registry entries (and index data) of indexes not in `keep`. */
static int drop_unused_indexes(herald_store *s, MDB_txn *txn, const hd_table *tables, size_t n)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->meta, &cur);
    if (rc) return rc;
    MDB_val k = {2, "i:"}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;) {
        if (k.mv_size < 2 || memcmp(k.mv_data, "i:", 2) != 0) break;
        uint32_t iid = v.mv_size >= 4 ? hd__get_be32(v.mv_data) : 0;
        bool used = false;
        for (size_t i = 0; i < n && !used; i++)
            for (size_t j = 0; j < tables[i].nindexes && !used; j++)
                used = tables[i].indexes[j].id == iid;
        if (used) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        if ((rc = delete_index_entries(s, txn, iid))) break;
        if ((rc = mdb_cursor_del(cur, 0))) break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

typedef struct change_ctx {
    herald_store *s;
    herald_txn *t;
    const hd_table *tab;
    const herald_validator *validator; /* NULL: no validation needed */
    const uint32_t *new_ids;
    size_t nnew;
    hd_buf report;
    int bad;
    herald_error *err;
} change_ctx;

/* Validates a stored document (system fields set aside) into `verr`. */
static int validate_stored(herald_store *s, const herald_validator *v, const herald_value *doc,
                           herald_error *verr)
{
    herald_value copy;
    if (herald_value_copy(&copy, doc)) return HERALD_ENOMEM;
    herald_object_remove(&copy, "_id");
    herald_object_remove(&copy, "_creationTime");
    int rc = hd__validate(v, &copy, NULL, hd__resolve_id, s, verr);
    herald_value_free(&copy);
    return rc;
}

static int change_doc(void *ctx, const herald_value *doc)
{
    change_ctx *c = ctx;
    if (c->validator) {
        herald_error verr = {0};
        int rc = validate_stored(c->s, c->validator, doc, &verr);
        if (rc == HERALD_ENOMEM) return rc;
        if (rc) {
            if (c->bad < 3) {
                const herald_value *id = herald_object_get(doc, "_id");
                char line[700];
                snprintf(line, sizeof line, "%s%s (%s)", c->bad ? "; " : "", id ? id->u.s.ptr : "?",
                         verr.message);
                hd__buf_str(&c->report, line);
            }
            c->bad++;
        }
    }
    if (c->nnew && !c->bad) {
        const herald_value *idv = herald_object_get(doc, "_id");
        uint8_t id[HERALD_ID_BYTES];
        hd__id_parse(idv->u.s.ptr, idv->u.s.len, id);
        for (size_t i = 0; i < c->tab->nindexes; i++) {
            const hd_index *ix = &c->tab->indexes[i];
            bool is_new = false;
            for (size_t j = 0; j < c->nnew; j++)
                is_new |= c->new_ids[j] == ix->id;
            if (!is_new || ix->kind == HD_INDEX_BY_ID) continue;
            /* Backfill through the same path as ordinary writes, one index at a time. */
            hd_table one = *c->tab;
            one.indexes = (hd_index *)ix;
            one.nindexes = 1;
            int rc = hd__index_put(c->t, &one, doc, id, true, NULL, c->err);
            if (rc) return rc;
        }
    }
    return 0;
}

int herald_store_set_schema(herald_store *s, herald_schema *schema, herald_error *err)
{
    if (s->open_group) {
        herald_schema_free(schema);
        return herald_fail(err, HERALD_EBUSY, "cannot change the schema while a group is open");
    }
    if (hd__store_writable(s, "changing the schema", err)) {
        herald_schema_free(schema);
        return HERALD_EBUSY;
    }
    registry_ctx r = {.s = s, .create = true};
    hd_table *tables = NULL;
    size_t ntables = 0;
    hd_fts *fts = NULL;
    char *json = NULL;
    herald_txn t = {.s = s};
    change_ctx c = {.s = s, .t = &t, .err = err};
    hd_retired *retired = NULL;
    int rc = mdb_txn_begin(s->env, NULL, 0, &r.txn);
    if (rc) {
        rc = hd__mdb_fail(err, rc, "changing the schema");
        goto done;
    }
    t.txn = r.txn;
    if ((rc = build_tables(&r, schema, &tables, &ntables))) goto mdb_fail;
    /* Tables that disappear must be empty. */
    for (size_t i = 0; i < s->ntables; i++) {
        if (s->tables[i].def->system || herald_schema_table(schema, s->tables[i].def->name))
            continue;
        uint64_t n = 0;
        if ((rc = herald_table_count(&t, s->tables[i].def->name, &n, err))) goto done;
        if (n) {
            rc = herald_fail(err, HERALD_ESCHEMA,
                             "table `%s` still has %llu documents; delete them before "
                             "removing it from the schema",
                             s->tables[i].def->name, (unsigned long long)n);
            goto done;
        }
    }
    if ((rc = drop_unused_indexes(s, r.txn, tables, ntables))) goto mdb_fail;
    /* Validate changed tables and backfill new indexes, table by table. The
     * scan reads documents through the old runtime tables (same numbers). */
    for (size_t i = 0; i < schema->ntables; i++) {
        const herald_table_def *def = &schema->tables[i];
        const hd_table *old = hd__table_by_name(s, def->name);
        if (!old) continue; /* a new table has no documents */
        const herald_table_def *olddef = old->def;
        bool changed = !hd__validator_equal(olddef->document, def->document) ||
                       (schema->schema_validation && !s->schema->schema_validation);
        c.tab = &tables[i];
        c.validator = changed && schema->schema_validation ? def->document : NULL;
        c.new_ids = r.new_ids;
        c.nnew = r.nnew;
        c.bad = 0;
        if (!c.validator && !c.nnew) continue;
        /* Validation first, so that a refused change backfills nothing. */
        if (c.validator) {
            size_t keep = c.nnew;
            c.nnew = 0;
            if ((rc = herald_table_scan(&t, def->name, change_doc, &c, err))) goto done;
            c.nnew = keep;
            if (c.bad) {
                hd__buf_byte(&c.report, 0);
                rc = herald_fail(err, HERALD_ESCHEMA,
                                 "schema change refused: %d document%s of table `%s` do not match "
                                 "the new validator: %s",
                                 c.bad, c.bad == 1 ? "" : "s", def->name,
                                 c.report.failed ? "" : (char *)c.report.p);
                goto done;
            }
            c.validator = NULL;
        }
        if (c.nnew && (rc = herald_table_scan(&t, def->name, change_doc, &c, err))) goto done;
    }
    /* Search indexes: new or redefined ones are built, dropped ones deleted. */
    if ((rc = hd__fts_load(s, r.txn, tables, ntables, true, &fts, err))) goto done;
    json = herald_schema_to_json(schema);
    if (!json) {
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = meta_put(s, r.txn, "schema", json, strlen(json)))) goto mdb_fail;
    if (s->schema && !(retired = calloc(1, sizeof *retired))) {
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
        goto done;
    }
    /* Every read snapshot holds map_lock shared for its whole life and reads
     * the runtime tables and search indexes through the store: holding it
     * exclusively, the new data and the new tables appear together. */
    pthread_rwlock_wrlock(&s->map_lock);
    rc = mdb_txn_commit(r.txn);
    r.txn = NULL;
    if (rc) {
        pthread_rwlock_unlock(&s->map_lock);
        goto mdb_fail;
    }
    if (retired) {
        *retired = (hd_retired){s->retired, s->schema, s->tables, s->ntables};
        s->retired = retired;
        retired = NULL;
    } else {
        free_tables(s->tables, s->ntables); /* the first schema: none in use before */
    }
    /* The vector rows point into the old tables: the next search rebuilds. */
    hd__vector_free(atomic_exchange(&s->vec, NULL));
    __atomic_store_n(&s->schema, schema, __ATOMIC_RELEASE);
    s->tables = tables;
    s->ntables = ntables;
    hd__fts_free(s->fts);
    s->fts = fts;
    pthread_rwlock_unlock(&s->map_lock);
    fts = NULL;
    schema = NULL;
    tables = NULL;
    goto done;
mdb_fail:
    rc = hd__mdb_fail(err, rc, "changing the schema");
done:
    if (r.txn) mdb_txn_abort(r.txn);
    hd__buf_free(&c.report);
    free(r.new_ids);
    free(json);
    free(retired);
    if (tables) free_tables(tables, ntables);
    hd__fts_free(fts);
    herald_schema_free(schema);
    return rc;
}

/* ---- herald check ---- */

typedef struct check_ctx {
    herald_store *s;
    herald_txn *t;
    const hd_table *tab;
    herald_report_fn report;
    void *rctx;
    uint64_t problems;
    uint64_t entries; /* index entries the documents call for */
    herald_error *err;
} check_ctx;

static void problem(check_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(check_ctx *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->problems++;
    if (c->report) c->report(c->rctx, line);
}

static int check_doc(void *ctx, const herald_value *doc)
{
    check_ctx *c = ctx;
    const herald_value *idv = herald_object_get(doc, "_id");
    uint8_t id[HERALD_ID_BYTES];
    hd__id_parse(idv->u.s.ptr, idv->u.s.len, id);
    const herald_value *ct = herald_object_get(doc, "_creationTime");
    if (!ct || ct->type != HERALD_FLOAT64)
        problem(c, "%s: document %s has no _creationTime", c->tab->def->name, idv->u.s.ptr);
    if (c->s->schema->schema_validation) {
        herald_error verr = {0};
        int rc = validate_stored(c->s, c->tab->def->document, doc, &verr);
        if (rc == HERALD_ENOMEM) return rc;
        if (rc)
            problem(c, "%s: document %s does not match the schema: %s", c->tab->def->name,
                    idv->u.s.ptr, verr.message);
    }
    for (size_t i = 1; i < c->tab->nindexes; i++) {
        const hd_index *ix = &c->tab->indexes[i];
        hd_buf key = HD_BUF_INIT;
        hd__index_key(&key, ix, doc, id);
        if (key.failed) return HERALD_ENOMEM;
        size_t n = key.len;
        uint8_t stored[HD_MAX_KEY];
        if (n - HD_IID_BYTES - HERALD_ID_BYTES >= HD_MAX_VALUES) {
            memcpy(stored, key.p, HD_IID_BYTES + HD_MAX_VALUES);
            memcpy(stored + HD_IID_BYTES + HD_MAX_VALUES, id, HERALD_ID_BYTES);
            n = HD_MAX_KEY;
        } else {
            memcpy(stored, key.p, n);
        }
        hd__buf_free(&key);
        MDB_val k = {n, stored}, v;
        int rc = mdb_get(c->t->txn, c->s->idx, &k, &v);
        if (rc == MDB_NOTFOUND)
            problem(c, "%s: document %s has no entry in index %s", c->tab->def->name, idv->u.s.ptr,
                    ix->name);
        else if (rc)
            return hd__mdb_fail(c->err, rc, "checking an index");
        c->entries++;
    }
    return 0;
}

static void idem_problem(void *ctx, const char *line)
{
    problem(ctx, "%s", line);
}

int herald_store_check(herald_store *s, herald_report_fn report, void *ctx, herald_error *err)
{
    herald_txn *t;
    int rc = herald_read_begin(s, &t, err);
    if (rc) return rc;
    check_ctx c = {.s = s, .t = t, .report = report, .rctx = ctx, .err = err};
    for (size_t i = 0; i < s->ntables && !rc; i++) {
        c.tab = &s->tables[i];
        rc = herald_table_scan(t, c.tab->def->name, check_doc, &c, err);
    }
    /* Every entry must belong to a known index and a document that calls for it. */
    MDB_cursor *cur = NULL;
    uint64_t seen = 0;
    if (!rc && (rc = mdb_cursor_open(t->txn, s->idx, &cur))) rc = hd__mdb_fail(err, rc, "check");
    MDB_val k, v;
    int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == 0 && !rc; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        seen++;
        if (k.mv_size < HD_IID_BYTES + HERALD_ID_BYTES + 1) {
            problem(&c, "index entry of %zu bytes is too short", k.mv_size);
            continue;
        }
        uint32_t iid = hd__get_be32(k.mv_data);
        const hd_table *tab = NULL;
        const hd_index *ix = NULL;
        for (size_t i = 0; i < s->ntables && !ix; i++)
            for (size_t j = 0; j < s->tables[i].nindexes; j++)
                if (s->tables[i].indexes[j].id == iid) {
                    tab = &s->tables[i];
                    ix = &s->tables[i].indexes[j];
                    break;
                }
        const uint8_t *id = (uint8_t *)k.mv_data + k.mv_size - HERALD_ID_BYTES;
        char idtext[HERALD_ID_CHARS + 1];
        hd__id_format(id, idtext);
        if (!ix) {
            problem(&c, "index entry for document %s belongs to unknown index %u", idtext, iid);
            continue;
        }
        MDB_val dk = {HERALD_ID_BYTES, (void *)id}, dv;
        if (hd__get_be32(id) != tab->number || mdb_get(t->txn, s->docs, &dk, &dv) != 0)
            problem(&c, "%s: index %s has an entry for missing document %s", tab->def->name,
                    ix->name, idtext);
    }
    if (cur) mdb_cursor_close(cur);
    if (!rc && mrc != MDB_NOTFOUND) rc = hd__mdb_fail(err, mrc, "check");
    uint64_t records;
    if (!rc) rc = hd__idem_check(t, idem_problem, &c, &records, err);
    if (!rc) rc = hd__fts_check(t, idem_problem, &c, err);
    if (!rc && seen != c.entries)
        problem(&c, "the index holds %llu entries but the documents call for %llu",
                (unsigned long long)seen, (unsigned long long)c.entries);
    herald_txn_end(t);
    if (!rc && c.problems)
        rc = herald_fail(err, HERALD_ECORRUPT, "%llu problem%s found",
                         (unsigned long long)c.problems, c.problems == 1 ? "" : "s");
    return rc;
}

/* The document id of a by_id entry, or NULL for an entry of another index. */
static const uint8_t *by_id_doc(const herald_store *s, const herald_write_key *k)
{
    if (k->key_len < HD_IID_BYTES + HERALD_ID_BYTES) return NULL;
    const uint8_t *id = k->key + HD_IID_BYTES;
    const hd_table *t = hd__table_by_number(s, hd__get_be32(id));
    return t && t->indexes[0].id == k->index_id ? id : NULL;
}

bool herald_write_set_writes_system(herald_store *s, const herald_write_set *ws)
{
    uint32_t ids[8];
    size_t n = 0;
    for (size_t i = s->schema ? s->schema->ntables : 0; i < s->ntables && n < 8; i++)
        ids[n++] = s->tables[i].indexes[0].id;
    for (int pass = 0; pass < 2; pass++) {
        const herald_write_key *keys = pass ? ws->added : ws->removed;
        size_t nkeys = pass ? ws->nadded : ws->nremoved;
        for (size_t i = 0; i < nkeys; i++)
            for (size_t k = 0; k < n; k++)
                if (keys[i].index_id == ids[k]) return true;
    }
    return false;
}

void herald_write_set_changes(herald_store *s, const herald_write_set *ws, herald_change_fn fn,
                              void *ctx)
{
    /*
     * Every write of a document removes its old by_id entry (if it had one)
     * and adds the new one (unless it deletes): counted per document, added
     * minus removed is +1 for an insert, -1 for a delete, 0 for an update.
     * A mutation writes few documents; a linear pass over them is enough.
     */
    size_t cap = ws->nremoved + ws->nadded, n = 0;
    struct doc {
        const uint8_t *id;
        long delta;
    } *docs = cap ? calloc(cap, sizeof *docs) : NULL;
    if (cap && !docs) return;
    for (int pass = 0; pass < 2; pass++) {
        const herald_write_key *keys = pass ? ws->added : ws->removed;
        size_t nkeys = pass ? ws->nadded : ws->nremoved;
        for (size_t i = 0; i < nkeys; i++) {
            const uint8_t *id = by_id_doc(s, &keys[i]);
            if (!id) continue;
            size_t k = 0;
            while (k < n && memcmp(docs[k].id, id, HERALD_ID_BYTES))
                k++;
            if (k == n) docs[n++].id = id;
            docs[k].delta += pass ? 1 : -1;
        }
    }
    for (size_t k = 0; k < n; k++) {
        const hd_table *t = hd__table_by_number(s, hd__get_be32(docs[k].id));
        char text[HERALD_ID_CHARS + 1];
        hd__id_format(docs[k].id, text);
        fn(ctx, t->def->name, text,
           docs[k].delta > 0   ? HERALD_CHANGE_INSERT
           : docs[k].delta < 0 ? HERALD_CHANGE_DELETE
                               : HERALD_CHANGE_UPDATE);
    }
    free(docs);
}
