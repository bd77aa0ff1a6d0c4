/*
 * Write groups, mutations and document writes.
 *
 * A group is one LMDB write transaction and one durable commit; each
 * mutation is a nested transaction inside it, so a failing mutation rolls
 * back only itself. Every document write goes through write_doc(), which
 * validates, stores the document and keeps every index in step, recording
 * the old and new index entries in the mutation's write set. Nothing here
 * may acknowledge a mutation as durable: only herald_group_commit() does.
 */
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "keycodec.h"
#include "schema_priv.h"
#include "store_priv.h"
#include "vector.h"

/* Big-endian integers: in idempotency records, metadata and the replication log. */
static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_u32(hd_buf *b, uint32_t v)
{
    uint8_t p[4];
    hd__put_be32(p, v);
    hd__buf_append(b, p, 4);
}

static void put_u64(hd_buf *b, uint64_t v)
{
    uint8_t p[8];
    put_be64(p, v);
    hd__buf_append(b, p, 8);
}

/* ---- ids ---- */

static const char id_alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

void hd__id_format(const uint8_t id[HERALD_ID_BYTES], char out[HERALD_ID_CHARS + 1])
{
    /* 160 bits in 32 groups of five, most significant first. */
    for (int i = 0; i < HERALD_ID_CHARS; i++) {
        int bit = i * 5;
        unsigned v =
            (unsigned)id[bit / 8] << 8 | (bit / 8 + 1 < HERALD_ID_BYTES ? id[bit / 8 + 1] : 0);
        out[i] = id_alphabet[(v >> (11 - bit % 8)) & 31];
    }
    out[HERALD_ID_CHARS] = 0;
}

bool hd__id_parse(const char *text, size_t len, uint8_t id[HERALD_ID_BYTES])
{
    if (len != HERALD_ID_CHARS) return false;
    memset(id, 0, HERALD_ID_BYTES);
    for (int i = 0; i < HERALD_ID_CHARS; i++) {
        const char *p = memchr(id_alphabet, text[i], 32);
        if (!p || text[i] == 0) return false;
        unsigned v = (unsigned)(p - id_alphabet);
        int bit = i * 5;
        /* Spread the five bits over one or two bytes. */
        unsigned shifted = v << (11 - bit % 8);
        id[bit / 8] |= (uint8_t)(shifted >> 8);
        if (bit / 8 + 1 < HERALD_ID_BYTES) id[bit / 8 + 1] |= (uint8_t)shifted;
    }
    return true;
}

static int id_value(herald_value *out, const uint8_t id[HERALD_ID_BYTES])
{
    char text[HERALD_ID_CHARS + 1];
    hd__id_format(id, text);
    return herald_string(out, text, HERALD_ID_CHARS);
}

int hd__doc_decode(const uint8_t id[HERALD_ID_BYTES], const MDB_val *data, herald_value *out,
                   herald_error *err)
{
    size_t used;
    int rc = hd__key_decode(data->mv_data, data->mv_size, &used, out);
    if (rc == 0 && (out->type != HERALD_OBJECT || used != data->mv_size)) {
        herald_value_free(out);
        rc = HERALD_ECORRUPT;
    }
    if (rc) {
        char text[HERALD_ID_CHARS + 1];
        hd__id_format(id, text);
        return herald_fail(err, rc == HERALD_ENOMEM ? rc : HERALD_ECORRUPT,
                           "document %s cannot be decoded", text);
    }
    herald_value idv;
    if (id_value(&idv, id) || herald_object_set(out, "_id", 3, idv)) {
        herald_value_free(out);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    return 0;
}

/* ---- groups ---- */

static double now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec * 1000.0 + (double)tv.tv_usec / 1000.0;
}

int herald_group_begin(herald_store *s, herald_group **out, herald_error *err)
{
    if (s->open_group) return herald_fail(err, HERALD_EBUSY, "a write group is already open");
    int rc = hd__store_writable(s, "writing", err);
    if (rc) return rc;
    herald_group *g = calloc(1, sizeof *g);
    if (!g) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    rc = mdb_txn_begin(s->env, NULL, 0, &g->txn);
    if (rc) {
        free(g);
        return hd__mdb_fail(err, rc, "beginning a write");
    }
    g->s = s;
    g->version = atomic_load(&s->version);
    MDB_val k = {7, "last_ct"}, v;
    if (mdb_get(g->txn, s->meta, &k, &v) == 0 && v.mv_size == 8) memcpy(&g->last_ct, v.mv_data, 8);
    s->open_group = g;
    *out = g;
    return 0;
}

static void free_sets(herald_group *g)
{
    for (size_t i = 0; i < g->nsets; i++) {
        hd_keys r = {g->sets[i].removed, g->sets[i].nremoved, 0};
        hd_keys a = {g->sets[i].added, g->sets[i].nadded, 0};
        hd__keys_free(&r);
        hd__keys_free(&a);
    }
    free(g->sets);
    g->sets = NULL;
    g->nsets = g->cap = 0;
}

/* Doubles the map up to its maximum; called with no transaction open. */
static void grow_map(herald_store *s)
{
    if (s->map_size >= s->max_map_size) return;
    size_t want = s->map_size * 2;
    if (want > s->max_map_size) want = s->max_map_size;
    pthread_rwlock_wrlock(&s->map_lock);
    if (mdb_env_set_mapsize(s->env, want) == 0) s->map_size = want;
    pthread_rwlock_unlock(&s->map_lock);
}

int herald_group_commit(herald_group *g, herald_error *err)
{
    herald_store *s = g->s;
    if (g->done) return herald_fail(err, HERALD_EBUSY, "group already committed");
    if (g->open_mutation) herald_mutation_abort(g->open_mutation);
    g->done = true;
    int rc = 0;
    if (g->nsets) {
        MDB_val k = {7, "version"}, v = {8, &g->version};
        rc = mdb_put(g->txn, s->meta, &k, &v, 0);
        MDB_val kc = {7, "last_ct"}, vc = {8, &g->last_ct};
        if (!rc) rc = mdb_put(g->txn, s->meta, &kc, &vc, 0);
    }
    for (struct hd_meta_put *p = g->meta; p && !rc; p = p->next) {
        MDB_val k = {strlen(p->name), p->name}, v = {sizeof p->v, p->v};
        rc = mdb_put(g->txn, s->meta, &k, &v, 0);
    }
    if (g->logging && g->log.failed) {
        mdb_txn_abort(g->txn);
        g->txn = NULL;
        s->open_group = NULL;
        free_sets(g);
        return herald_fail(err, HERALD_ENOMEM, "out of memory for the replication log");
    }
    if (rc) {
        mdb_txn_abort(g->txn);
    } else {
        hd__vector_note(s, g); /* before any reader can see the commit */
        rc = mdb_txn_commit(g->txn);
    }
    g->txn = NULL;
    s->open_group = NULL;
    if (rc == MDB_MAP_FULL) g->map_full = true;
    if (g->map_full) grow_map(s);
    if (rc) {
        free_sets(g);
        return hd__mdb_fail(err, rc, "committing");
    }
    atomic_store(&s->version, g->version);
    return 0;
}

void herald_group_free(herald_group *g)
{
    if (!g) return;
    herald_group_abort(g);
    hd__buf_free(&g->log);
    for (struct hd_meta_put *p = g->meta, *n; p; p = n) {
        n = p->next;
        free(p);
    }
    free_sets(g);
    free(g);
}

void herald_group_abort(herald_group *g)
{
    if (g->open_mutation) herald_mutation_abort(g->open_mutation);
    if (!g->done) {
        mdb_txn_abort(g->txn);
        g->txn = NULL;
        g->s->open_group = NULL;
        g->done = true;
        free_sets(g);
        /* A group dropped for want of map: the next one has more. */
        if (g->map_full) grow_map(g->s);
    }
}

void herald_group_log_start(herald_group *g)
{
    g->logging = true;
}

const uint8_t *herald_group_log(const herald_group *g, size_t *len)
{
    *len = g->log.len;
    return g->log.len ? g->log.p : NULL;
}

int herald_group_set_meta(herald_group *g, const char *name, uint64_t v, herald_error *err)
{
    struct hd_meta_put *p = g->meta;
    while (p && strcmp(p->name, name))
        p = p->next;
    if (strlen(name) >= sizeof p->name || strncmp(name, "repl_", 5))
        return herald_fail(err, HERALD_EINVAL, "bad replication metadata `%.40s`", name);
    if (!p) {
        if (!(p = calloc(1, sizeof *p))) return herald_fail(err, HERALD_ENOMEM, "out of memory");
        strcpy(p->name, name);
        p->next = g->meta;
        g->meta = p;
    }
    put_be64(p->v, v);
    return 0;
}

int herald_txn_get_meta(herald_txn *t, const char *name, uint64_t *out, herald_error *err)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    *out = 0;
    int rc = mdb_get(t->txn, t->s->meta, &k, &v);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return hd__mdb_fail(err, rc, "reading metadata");
    if (v.mv_size != 8)
        return herald_fail(err, HERALD_ECORRUPT, "metadata `%.40s` is %zu bytes, not 8", name,
                           v.mv_size);
    *out = get_be64(v.mv_data);
    return 0;
}

int herald_store_get_meta(herald_store *s, const char *name, uint64_t *out, herald_error *err)
{
    herald_txn *t;
    int rc = herald_read_begin(s, &t, err);
    if (rc) return rc;
    rc = herald_txn_get_meta(t, name, out, err);
    herald_txn_end(t);
    return rc;
}

size_t herald_group_count(const herald_group *g)
{
    return g->nsets;
}

const herald_write_set *herald_group_write_set(const herald_group *g, size_t i)
{
    return i < g->nsets ? &g->sets[i] : NULL;
}

/* ---- mutations ---- */

int herald_mutation_begin(herald_group *g, herald_txn **out, herald_error *err)
{
    if (g->done) return herald_fail(err, HERALD_EBUSY, "the group is committed");
    if (g->open_mutation) return herald_fail(err, HERALD_EBUSY, "a mutation is already open");
    herald_txn *m = calloc(1, sizeof *m);
    if (!m) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    int rc = mdb_txn_begin(g->s->env, g->txn, 0, &m->txn);
    if (rc) {
        free(m);
        return hd__mdb_fail(err, rc, "beginning a mutation");
    }
    m->s = g->s;
    m->group = g;
    m->version = g->version;
    g->open_mutation = m;
    *out = m;
    return 0;
}

static void mutation_free(herald_txn *m)
{
    m->group->open_mutation = NULL;
    hd__buf_free(&m->log);
    hd__keys_free(&m->removed);
    hd__keys_free(&m->added);
    free(m);
}

void herald_mutation_abort(herald_txn *m)
{
    if (!m) return;
    mdb_txn_abort(m->txn);
    mutation_free(m);
}

int herald_mutation_commit(herald_txn *m, uint64_t *version, herald_error *err)
{
    herald_group *g = m->group;
    if (g->nsets == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        herald_write_set *sets = realloc(g->sets, cap * sizeof *sets);
        if (!sets) {
            herald_mutation_abort(m);
            return herald_fail(err, HERALD_ENOMEM, "out of memory");
        }
        g->sets = sets;
        g->cap = cap;
    }
    int rc = mdb_txn_commit(m->txn);
    if (rc) {
        if (rc == MDB_MAP_FULL) g->map_full = true;
        m->txn = NULL;
        mutation_free(m);
        return hd__mdb_fail(err, rc, "committing a mutation");
    }
    g->version++;
    if (g->logging) {
        hd__buf_byte(&g->log, 'M');
        put_u64(&g->log, g->version);
        put_u32(&g->log, m->nlogged);
        hd__buf_append(&g->log, m->log.p, m->log.len);
    }
    g->sets[g->nsets++] = (herald_write_set){.version = g->version,
                                             .removed = m->removed.v,
                                             .nremoved = m->removed.len,
                                             .added = m->added.v,
                                             .nadded = m->added.len,
                                             .ndocs = m->ndocs};
    m->removed = (hd_keys){0};
    m->added = (hd_keys){0};
    if (version) *version = g->version;
    mutation_free(m);
    return 0;
}

/* ---- document writes ---- */

/* SPEC §1 limits for values built outside the JSON parser. */
static int check_limits(const herald_value *v, int depth, herald_error *err)
{
    switch (v->type) {
    case HERALD_ARRAY:
        if (depth >= HERALD_MAX_DEPTH) goto deep;
        if (v->u.arr.len > HERALD_MAX_ARRAY)
            return herald_fail(err, HERALD_ELIMIT, "array has more than %d elements",
                               HERALD_MAX_ARRAY);
        for (size_t i = 0; i < v->u.arr.len; i++) {
            int rc = check_limits(&v->u.arr.items[i], depth + 1, err);
            if (rc) return rc;
        }
        return 0;
    case HERALD_OBJECT:
        if (depth >= HERALD_MAX_DEPTH) goto deep;
        if (v->u.obj.len > HERALD_MAX_FIELDS)
            return herald_fail(err, HERALD_ELIMIT, "object has more than %d fields",
                               HERALD_MAX_FIELDS);
        for (size_t i = 0; i < v->u.obj.len; i++) {
            const herald_field *f = &v->u.obj.fields[i];
            if (f->key_len == 0 || f->key[0] == '$' || f->key_len > HERALD_MAX_FIELD_NAME ||
                strlen(f->key) != f->key_len)
                return herald_fail(err, HERALD_EINVAL, "invalid field name `%.64s`", f->key);
            int rc = check_limits(&f->val, depth + 1, err);
            if (rc) return rc;
        }
        return 0;
    default:
        return 0;
    }
deep:
    return herald_fail(err, HERALD_ELIMIT, "document is nested deeper than %d levels",
                       HERALD_MAX_DEPTH);
}

const char *hd__resolve_id(void *store, const char *id, size_t len)
{
    herald_store *s = store;
    uint8_t bin[HERALD_ID_BYTES];
    if (!hd__id_parse(id, len, bin)) return NULL;
    const hd_table *t = hd__table_by_number(s, hd__get_be32(bin));
    return t ? t->def->name : NULL;
}

static int need_mutation(herald_txn *m, herald_error *err)
{
    if (!m->group) return herald_fail(err, HERALD_EBUSY, "writes need a mutation, not a snapshot");
    return 0;
}

/* Checks user fields of a document: an object with no system fields, within limits, valid. */
static int check_user_doc(herald_txn *m, const hd_table *tab, const herald_value *doc,
                          herald_error *err)
{
    if (doc->type != HERALD_OBJECT)
        return herald_fail(err, HERALD_EINVAL, "a document must be an object");
    for (size_t i = 0; i < doc->u.obj.len; i++)
        if (doc->u.obj.fields[i].key[0] == '_' && doc->u.obj.fields[i].val.type != HERALD_UNDEFINED)
            return herald_fail(err, HERALD_EINVAL, "field `%s` is reserved for the system",
                               doc->u.obj.fields[i].key);
    int rc = check_limits(doc, 0, err);
    if (rc) return rc;
    if (!m->s->schema->schema_validation) return 0;
    rc = hd__validate(tab->def->document, doc, NULL, hd__resolve_id, m->s, err);
    if (rc && err) {
        char msg[sizeof err->message + 80];
        snprintf(msg, sizeof msg, "%.64s: %s", tab->def->name, err->message);
        memcpy(err->message, msg, sizeof err->message - 1);
        err->message[sizeof err->message - 1] = 0;
    }
    return rc;
}

/* ---- the replication log (store.h, "replication") ---- */

/* A document's change in the mutation's log: stored (`enc`, its encoding) or deleted. */
static int log_doc(herald_txn *m, const hd_table *tab, const uint8_t id[HERALD_ID_BYTES],
                   const hd_buf *enc, herald_error *err)
{
    size_t nlen = strlen(tab->def->name);
    hd__buf_byte(&m->log, enc ? 'P' : 'D');
    hd__buf_byte(&m->log, (uint8_t)(nlen > 255 ? 255 : nlen));
    hd__buf_append(&m->log, tab->def->name, nlen > 255 ? 255 : nlen);
    hd__buf_append(&m->log, id, HERALD_ID_BYTES);
    if (enc) {
        put_u32(&m->log, (uint32_t)enc->len);
        hd__buf_append(&m->log, enc->p, enc->len);
    }
    m->nlogged++;
    return m->log.failed ? herald_fail(err, HERALD_ENOMEM, "out of memory") : 0;
}

/*
 * Stores `doc` (user fields plus _creationTime, no _id) under `id`,
 * replacing `old` (NULL for an insert) and updating every index.
 */
static int write_doc(herald_txn *m, const hd_table *tab, const uint8_t id[HERALD_ID_BYTES],
                     const herald_value *old, const herald_value *doc, herald_error *err)
{
    herald_store *s = m->s;
    int rc = 0;
    hd_buf enc = HD_BUF_INIT;
    if (doc) {
        hd__key_encode(&enc, doc);
        if (enc.failed) return herald_fail(err, HERALD_ENOMEM, "out of memory");
        if (enc.len > HERALD_MAX_DOCUMENT_BYTES) {
            hd__buf_free(&enc);
            return herald_fail(err, HERALD_ELIMIT, "document is larger than %d bytes (%zu)",
                               HERALD_MAX_DOCUMENT_BYTES, enc.len);
        }
    }
    MDB_val k = {HERALD_ID_BYTES, (void *)id}, v = {enc.len, enc.p};
    if (old && (rc = hd__index_put(m, tab, old, id, false, &m->removed, err))) goto done;
    if (doc) {
        rc = mdb_put(m->txn, s->docs, &k, &v, old ? 0 : MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) {
            char text[HERALD_ID_CHARS + 1];
            hd__id_format(id, text);
            rc = herald_fail(err, HERALD_EINVAL, "document %s already exists", text);
            goto done;
        }
        if (rc) {
            rc = hd__mdb_fail(err, rc, "writing a document");
            goto done;
        }
        if ((rc = hd__index_put(m, tab, doc, id, true, &m->added, err))) goto done;
    } else if ((rc = mdb_del(m->txn, s->docs, &k, NULL))) {
        rc = hd__mdb_fail(err, rc, "deleting a document");
        goto done;
    }
    if ((rc = hd__fts_write(m, tab, id, old, doc, err))) goto done;
    /* by_id has no stored entries (the documents are it), but it is in the write set. */
    uint8_t key[HD_IID_BYTES + HERALD_ID_BYTES];
    hd__put_be32(key, tab->indexes[0].id);
    memcpy(key + HD_IID_BYTES, id, HERALD_ID_BYTES);
    if ((old && hd__keys_push(&m->removed, tab->indexes[0].id, key, sizeof key)) ||
        (doc && hd__keys_push(&m->added, tab->indexes[0].id, key, sizeof key)))
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (!rc && m->group->logging) rc = log_doc(m, tab, id, doc ? &enc : NULL, err);
    m->ndocs++;
done:
    hd__buf_free(&enc);
    if (rc == HERALD_EMAPFULL) m->group->map_full = true;
    return rc;
}

/* 16 fresh random bytes for an id: one RAND_bytes call serves 256 ids. */
static int random_id_bytes(herald_group *g, uint8_t *out, herald_error *err)
{
    const size_t n = HERALD_ID_BYTES - 4;
    if (g->random_used == 0 || g->random_used + n > sizeof g->random) {
        if (RAND_bytes(g->random, (int)sizeof g->random) != 1)
            return herald_fail(err, HERALD_ESTORE, "no randomness for a new id");
        g->random_used = 0;
    }
    memcpy(out, g->random + g->random_used, n);
    /* Each byte serves once. */
    OPENSSL_cleanse(g->random + g->random_used, n);
    g->random_used += n;
    return 0;
}

static double next_creation_time(herald_group *g)
{
    double t = now_ms();
    if (!(t > g->last_ct)) t = nextafter(g->last_ct, INFINITY);
    g->last_ct = t;
    return t;
}

void herald_txn_allow_system(herald_txn *m, bool allow)
{
    m->system = allow;
}

/* A write to a system table without herald_txn_allow_system: refused. */
static int system_refused(const herald_txn *m, const hd_table *tab, herald_error *err)
{
    if (!tab->def->system || m->system) return 0;
    return herald_fail(err, HERALD_EACCESS,
                       "table `%s` is written by Herald only (files: ctx.storage; scheduled "
                       "runs: ctx.scheduler)",
                       tab->def->name);
}

int herald_insert(herald_txn *m, const char *table, const herald_value *doc, char *id_out,
                  herald_error *err)
{
    int rc = need_mutation(m, err);
    if (rc) return rc;
    const hd_table *tab = hd__table_by_name(m->s, table);
    if (!tab) return herald_fail(err, HERALD_ENOTFOUND, "no table `%s` in the schema", table);
    if ((rc = system_refused(m, tab, err)) || (rc = check_user_doc(m, tab, doc, err))) return rc;
    uint8_t id[HERALD_ID_BYTES];
    hd__put_be32(id, tab->number);
    if ((rc = random_id_bytes(m->group, id + 4, err))) return rc;
    herald_value stored;
    if (herald_value_copy(&stored, doc)) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    rc = herald_object_set(&stored, "_creationTime", 13,
                           herald_float64(next_creation_time(m->group)));
    if (rc) {
        herald_value_free(&stored);
        return herald_fail(err, rc, "out of memory");
    }
    rc = write_doc(m, tab, id, NULL, &stored, err);
    herald_value_free(&stored);
    if (!rc && id_out) hd__id_format(id, id_out);
    return rc;
}

int herald_insert_raw(herald_txn *m, const char *table, const herald_value *doc, herald_error *err)
{
    int rc = need_mutation(m, err);
    if (rc) return rc;
    const hd_table *tab = hd__table_by_name(m->s, table);
    if (!tab) return herald_fail(err, HERALD_ENOTFOUND, "no table `%s` in the schema", table);
    if (doc->type != HERALD_OBJECT)
        return herald_fail(err, HERALD_EINVAL, "a document must be an object");
    const herald_value *idv = herald_object_get(doc, "_id");
    const herald_value *ct = herald_object_get(doc, "_creationTime");
    uint8_t id[HERALD_ID_BYTES];
    if (!idv || idv->type != HERALD_STRING || !hd__id_parse(idv->u.s.ptr, idv->u.s.len, id))
        return herald_fail(err, HERALD_EINVAL, "document has no valid `_id`");
    if (hd__get_be32(id) != tab->number)
        return herald_fail(err, HERALD_EINVAL, "id %s does not belong to table `%s`", idv->u.s.ptr,
                           table);
    if (!ct || ct->type != HERALD_FLOAT64 || !isfinite(ct->u.f))
        return herald_fail(err, HERALD_EINVAL, "document %s has no valid `_creationTime`",
                           idv->u.s.ptr);
    herald_value user;
    if (herald_value_copy(&user, doc)) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    herald_object_remove(&user, "_id");
    herald_object_remove(&user, "_creationTime");
    rc = check_user_doc(m, tab, &user, err);
    if (!rc) rc = herald_object_set(&user, "_creationTime", 13, herald_float64(ct->u.f));
    if (!rc) rc = write_doc(m, tab, id, NULL, &user, err);
    /* Later inserts must still get strictly larger creation times. */
    if (!rc && ct->u.f > m->group->last_ct) m->group->last_ct = ct->u.f;
    herald_value_free(&user);
    return rc;
}

/* Loads the stored document `id` (with _creationTime, without _id) of any table. */
static int load(herald_txn *t, const char *table, const char *id_text, uint8_t id[HERALD_ID_BYTES],
                const hd_table **tab, bool with_id, herald_value *out, herald_error *err)
{
    *out = herald_undefined();
    if (!id_text || !hd__id_parse(id_text, strlen(id_text), id))
        return herald_fail(err, HERALD_EINVAL, "`%.64s` is not a document id",
                           id_text ? id_text : "(null)");
    *tab = hd__table_by_number(t->s, hd__get_be32(id));
    if (!*tab || (table && strcmp((*tab)->def->name, table) != 0))
        return herald_fail(err, HERALD_EINVAL, "id %s is not an id of table `%s`", id_text,
                           table ? table : "(any)");
    MDB_val k = {HERALD_ID_BYTES, id}, v;
    int rc = mdb_get(t->txn, t->s->docs, &k, &v);
    if (rc == MDB_NOTFOUND)
        return herald_fail(err, HERALD_ENOTFOUND, "document %s does not exist", id_text);
    if (rc) return hd__mdb_fail(err, rc, "reading a document");
    rc = hd__doc_decode(id, &v, out, err);
    if (!rc && !with_id) herald_object_remove(out, "_id");
    return rc;
}

int herald_get(herald_txn *t, const char *table, const char *id_text, herald_value *out,
               herald_read_set *rs, herald_error *err)
{
    uint8_t id[HERALD_ID_BYTES];
    const hd_table *tab = NULL;
    int rc = load(t, table, id_text, id, &tab, true, out, err);
    if (rs && tab) {
        /* The point range of this id in by_id, whether the document exists or not. */
        uint8_t lo[HD_IID_BYTES + HERALD_ID_BYTES + 1];
        hd__put_be32(lo, tab->indexes[0].id);
        memcpy(lo + HD_IID_BYTES, id, HERALD_ID_BYTES);
        lo[sizeof lo - 1] = 0;
        if (hd__read_set_add(rs, tab->indexes[0].id, lo, sizeof lo - 1, lo, sizeof lo))
            rc = rc ? rc : herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    return rc;
}

const char *herald_id_table(herald_txn *t, const char *id)
{
    return hd__resolve_id(t->s, id, strlen(id));
}

/*
 * Validates `next` (user fields only), gives it the creation time of `old`
 * and stores it in place of `old`. Frees both, whatever happens.
 */
static int rewrite(herald_txn *m, const hd_table *tab, const uint8_t id[HERALD_ID_BYTES],
                   herald_value *old, herald_value *next, herald_error *err)
{
    const herald_value *ct = herald_object_get(old, "_creationTime");
    int rc = check_user_doc(m, tab, next, err);
    if (!rc && (!ct || ct->type != HERALD_FLOAT64))
        rc = herald_fail(err, HERALD_ECORRUPT, "stored document has no _creationTime");
    if (!rc && herald_object_set(next, "_creationTime", 13, *ct))
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (!rc) rc = write_doc(m, tab, id, old, next, err);
    herald_value_free(old);
    herald_value_free(next);
    return rc;
}

int herald_patch(herald_txn *m, const char *id_text, const herald_value *fields, herald_error *err)
{
    int rc = need_mutation(m, err);
    if (rc) return rc;
    if (!fields || fields->type != HERALD_OBJECT)
        return herald_fail(err, HERALD_EINVAL, "patch needs an object of fields");
    uint8_t id[HERALD_ID_BYTES];
    const hd_table *tab = NULL;
    herald_value old, next = herald_undefined();
    if ((rc = load(m, NULL, id_text, id, &tab, false, &old, err))) return rc;
    if ((rc = system_refused(m, tab, err))) {
        herald_value_free(&old);
        return rc;
    }
    if ((rc = herald_value_copy(&next, &old))) goto nomem;
    herald_object_remove(&next, "_creationTime");
    for (size_t i = 0; i < fields->u.obj.len; i++) {
        const herald_field *f = &fields->u.obj.fields[i];
        if (f->key[0] == '_') {
            rc = herald_fail(err, HERALD_EINVAL, "field `%s` is reserved for the system", f->key);
            goto done;
        }
        if (f->val.type == HERALD_UNDEFINED) {
            herald_object_remove(&next, f->key);
            continue;
        }
        herald_value c;
        if ((rc = herald_value_copy(&c, &f->val)) ||
            (rc = herald_object_set(&next, f->key, f->key_len, c)))
            goto nomem;
    }
    return rewrite(m, tab, id, &old, &next, err);
nomem:
    rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
done:
    herald_value_free(&old);
    herald_value_free(&next);
    return rc;
}

int herald_replace(herald_txn *m, const char *id_text, const herald_value *doc, herald_error *err)
{
    int rc = need_mutation(m, err);
    if (rc) return rc;
    uint8_t id[HERALD_ID_BYTES];
    const hd_table *tab = NULL;
    herald_value old, next = herald_undefined();
    if ((rc = load(m, NULL, id_text, id, &tab, false, &old, err))) return rc;
    if ((rc = system_refused(m, tab, err))) {
        herald_value_free(&old);
        return rc;
    }
    if (doc->type == HERALD_OBJECT) {
        /* Convex lets a replacement carry the document's own system fields. */
        if ((rc = herald_value_copy(&next, doc))) goto nomem;
        const herald_value *idv = herald_object_get(&next, "_id");
        if (idv && (idv->type != HERALD_STRING || strcmp(idv->u.s.ptr, id_text) != 0)) {
            rc = herald_fail(err, HERALD_EINVAL, "replace cannot change `_id`");
            goto done;
        }
        herald_object_remove(&next, "_id");
        herald_object_remove(&next, "_creationTime");
    }
    if (doc->type != HERALD_OBJECT) {
        rc = herald_fail(err, HERALD_EINVAL, "a document must be an object");
        goto done;
    }
    return rewrite(m, tab, id, &old, &next, err);
nomem:
    rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
done:
    herald_value_free(&old);
    herald_value_free(&next);
    return rc;
}

int herald_delete(herald_txn *m, const char *id_text, herald_error *err)
{
    int rc = need_mutation(m, err);
    if (rc) return rc;
    uint8_t id[HERALD_ID_BYTES];
    const hd_table *tab = NULL;
    herald_value old;
    if ((rc = load(m, NULL, id_text, id, &tab, false, &old, err))) return rc;
    if ((rc = system_refused(m, tab, err))) {
        herald_value_free(&old);
        return rc;
    }
    rc = write_doc(m, tab, id, &old, NULL, err);
    herald_value_free(&old);
    return rc;
}

/* ---- idempotency records ---- */

/*
 * idem       digest(scope, key) (32 bytes) -> version (8, big-endian), commit
 *            time in wall-clock ms (8), digest(request) (32), encoded result
 * idem_time  commit time (8, big-endian) . digest(scope, key) -> (empty)
 * The time index lets the purge take the oldest records without reading
 * the others. Every record has exactly its one time entry (herald check).
 */
#define IDEM_DIGEST 32
#define IDEM_HEAD   (8 + 8 + IDEM_DIGEST)

/* SHA-256 over length-prefixed parts, so that no two lists of parts meet. */
static int digest_parts(uint8_t out[IDEM_DIGEST], const void *const *parts, const size_t *lens,
                        int n, herald_error *err)
{
    hd_buf b = HD_BUF_INIT;
    for (int i = 0; i < n; i++) {
        uint8_t len[8];
        put_be64(len, lens[i]);
        hd__buf_append(&b, len, 8);
        hd__buf_append(&b, parts[i], lens[i]);
    }
    if (b.failed) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    SHA256(b.p, b.len, out);
    hd__buf_free(&b);
    return 0;
}

/* The record key of `req`, and the digest of its request. */
static int idem_digests(const herald_idem *req, uint8_t key[IDEM_DIGEST],
                        uint8_t request[IDEM_DIGEST], herald_error *err)
{
    size_t n = req->key ? strlen(req->key) : 0;
    if (n == 0 || n > HERALD_MAX_IDEM_KEY)
        return herald_fail(err, HERALD_EINVAL, "an idempotency key has 1 to %d bytes",
                           HERALD_MAX_IDEM_KEY);
    const void *kp[] = {req->scope ? req->scope : "", req->key};
    const size_t kl[] = {req->scope ? req->scope_len : 0, n};
    const void *rp[] = {req->request ? req->request : ""};
    const size_t rl[] = {req->request ? req->request_len : 0};
    int rc = digest_parts(key, kp, kl, 2, err);
    return rc ? rc : digest_parts(request, rp, rl, 1, err);
}

static uint64_t wall_ms(void)
{
    return (uint64_t)now_ms();
}

static bool expired(const herald_store *s, uint64_t at, uint64_t now)
{
    return (double)at + s->idem_retention_ms <= (double)now;
}

static int damaged(herald_error *err)
{
    return herald_fail(err, HERALD_ECORRUPT, "damaged idempotency record");
}

int herald_idem_get(herald_txn *t, const herald_idem *req, herald_value *result, uint64_t *version,
                    herald_error *err)
{
    uint8_t key[IDEM_DIGEST], request[IDEM_DIGEST];
    *result = herald_undefined();
    int rc = idem_digests(req, key, request, err);
    if (rc) return rc;
    if (!t->s->has_idem) return HERALD_ENOTFOUND;
    MDB_val mk = {IDEM_DIGEST, key}, v;
    rc = mdb_get(t->txn, t->s->idem, &mk, &v);
    if (rc == MDB_NOTFOUND) return HERALD_ENOTFOUND;
    if (rc) return hd__mdb_fail(err, rc, "reading an idempotency record");
    const uint8_t *p = v.mv_data;
    if (v.mv_size < IDEM_HEAD) return damaged(err);
    if (expired(t->s, get_be64(p + 8), wall_ms())) return HERALD_ENOTFOUND;
    if (memcmp(p + 16, request, IDEM_DIGEST) != 0)
        return herald_fail(err, HERALD_ECONFLICT,
                           "the idempotency key `%.64s` was already used by this caller for "
                           "another mutation (another function, other arguments or raw "
                           "operations); a new mutation needs a new key",
                           req->key);
    size_t used;
    if (hd__key_decode(p + IDEM_HEAD, v.mv_size - IDEM_HEAD, &used, result)) return damaged(err);
    *version = get_be64(p);
    return 0;
}

/* The time index key of the record `key` committed at `at`. */
static void time_key(uint8_t out[8 + IDEM_DIGEST], uint64_t at, const uint8_t *key)
{
    put_be64(out, at);
    memcpy(out + 8, key, IDEM_DIGEST);
}

/*
 * Stores record `v` (IDEM_HEAD bytes and the encoded result) under `key`
 * with its time entry; an older record of the key gives way, with its own.
 */
static int idem_store(herald_txn *m, const uint8_t key[IDEM_DIGEST], const uint8_t *v, size_t n,
                      herald_error *err)
{
    herald_store *s = m->s;
    uint8_t tk[8 + IDEM_DIGEST];
    MDB_val mk = {IDEM_DIGEST, (void *)key}, tv = {sizeof tk, tk}, none = {0, NULL}, old;
    int rc = mdb_get(m->txn, s->idem, &mk, &old);
    if (rc == 0 && old.mv_size >= IDEM_HEAD) {
        time_key(tk, get_be64((uint8_t *)old.mv_data + 8), key);
        rc = mdb_del(m->txn, s->idem_time, &tv, NULL);
    }
    if (rc && rc != MDB_NOTFOUND) goto fail;
    MDB_val rv = {n, (void *)v};
    time_key(tk, get_be64(v + 8), key);
    rc = mdb_put(m->txn, s->idem, &mk, &rv, 0);
    if (!rc) rc = mdb_put(m->txn, s->idem_time, &tv, &none, 0);
    if (rc) goto fail;
    if (m->group->logging) {
        hd__buf_byte(&m->log, 'I');
        hd__buf_append(&m->log, key, IDEM_DIGEST);
        put_u32(&m->log, (uint32_t)n);
        hd__buf_append(&m->log, v, n);
        m->nlogged++;
        if (m->log.failed) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    return 0;
fail:
    if (rc == MDB_MAP_FULL) m->group->map_full = true;
    return hd__mdb_fail(err, rc, "writing an idempotency record");
}

int herald_idem_put(herald_txn *m, const herald_idem *req, const herald_value *result,
                    herald_error *err)
{
    uint8_t key[IDEM_DIGEST], request[IDEM_DIGEST];
    int rc = need_mutation(m, err);
    if (rc || (rc = idem_digests(req, key, request, err))) return rc;
    /* The version this mutation gets if it commits: the next one of its group. */
    uint8_t head[IDEM_HEAD];
    put_be64(head, m->group->version + 1);
    put_be64(head + 8, wall_ms());
    memcpy(head + 16, request, IDEM_DIGEST);
    hd_buf b = HD_BUF_INIT;
    hd__buf_append(&b, head, sizeof head);
    hd__key_encode(&b, result);
    if (b.failed) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    rc = idem_store(m, key, b.p, b.len, err);
    hd__buf_free(&b);
    return rc;
}

int herald_idem_purge(herald_group *g, size_t max, size_t *purged, herald_error *err)
{
    herald_store *s = g->s;
    size_t n = 0;
    if (purged) *purged = 0;
    if (g->open_mutation) return herald_fail(err, HERALD_EBUSY, "a mutation is open");
    /* In a nested transaction, so that a failure leaves the group as it was. */
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    int rc = mdb_txn_begin(s->env, g->txn, 0, &txn);
    if (rc) return hd__mdb_fail(err, rc, "purging idempotency records");
    if ((rc = mdb_cursor_open(txn, s->idem_time, &cur))) goto fail;
    uint64_t now = wall_ms();
    MDB_val k, v;
    /* Always the first entry: the oldest (and a cursor past a delete that
     * emptied the index would have no current item). */
    while (n < max && (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        if (k.mv_size != 8 + IDEM_DIGEST) {
            rc = MDB_CORRUPTED;
            break;
        }
        uint64_t at = get_be64(k.mv_data);
        if (!expired(s, at, now)) break;
        MDB_val rk = {IDEM_DIGEST, (uint8_t *)k.mv_data + 8}, rec;
        /* The record goes only if this entry is its own (the same time). */
        rc = mdb_get(txn, s->idem, &rk, &rec);
        if (rc == 0 && rec.mv_size >= IDEM_HEAD && get_be64((uint8_t *)rec.mv_data + 8) == at)
            rc = mdb_del(txn, s->idem, &rk, NULL);
        if (rc && rc != MDB_NOTFOUND) break;
        if ((rc = mdb_cursor_del(cur, 0))) break;
        n++;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (rc && rc != MDB_NOTFOUND) goto fail;
    if ((rc = mdb_txn_commit(txn))) {
        if (rc == MDB_MAP_FULL) g->map_full = true;
        return hd__mdb_fail(err, rc, "purging idempotency records");
    }
    if (purged) *purged = n;
    return 0;
fail:
    if (cur) mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rc == MDB_MAP_FULL) g->map_full = true;
    return hd__mdb_fail(err, rc, "purging idempotency records");
}

int herald_idem_count(herald_txn *t, uint64_t *count, herald_error *err)
{
    *count = 0;
    if (!t->s->has_idem) return 0;
    MDB_stat st;
    int rc = mdb_stat(t->txn, t->s->idem, &st);
    if (rc) return hd__mdb_fail(err, rc, "counting idempotency records");
    *count = st.ms_entries;
    return 0;
}

int hd__idem_check(herald_txn *t, void (*problem)(void *ctx, const char *line), void *ctx,
                   uint64_t *records, herald_error *err)
{
    herald_store *s = t->s;
    *records = 0;
    if (!s->has_idem) return 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, s->idem, &cur);
    if (rc) return hd__mdb_fail(err, rc, "checking idempotency records");
    MDB_val k, v;
    uint64_t bad = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        (*records)++;
        uint8_t tk[8 + IDEM_DIGEST];
        MDB_val tv = {sizeof tk, tk}, none;
        if (k.mv_size != IDEM_DIGEST || v.mv_size < IDEM_HEAD) {
            bad++;
            continue;
        }
        time_key(tk, get_be64((uint8_t *)v.mv_data + 8), k.mv_data);
        int r = mdb_get(t->txn, s->idem_time, &tv, &none);
        if (r == MDB_NOTFOUND)
            bad++;
        else if (r)
            rc = r;
        if (rc) break;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) return hd__mdb_fail(err, rc, "checking idempotency records");
    MDB_stat st;
    if ((rc = mdb_stat(t->txn, s->idem_time, &st)))
        return hd__mdb_fail(err, rc, "checking idempotency records");
    char line[200];
    if (bad) {
        snprintf(line, sizeof line,
                 "%llu idempotency records are damaged or missing from the time index",
                 (unsigned long long)bad);
        problem(ctx, line);
    }
    if (st.ms_entries != *records) {
        snprintf(line, sizeof line,
                 "the idempotency time index holds %llu entries for %llu records",
                 (unsigned long long)st.ms_entries, (unsigned long long)*records);
        problem(ctx, line);
    }
    return 0;
}

/* ---- applying a replication log ---- */

typedef struct log_reader {
    const uint8_t *p, *end;
    bool bad;
} log_reader;

static const uint8_t *take(log_reader *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *at = r->p;
    r->p += n;
    return at;
}

static uint32_t take_u32(log_reader *r)
{
    const uint8_t *p = take(r, 4);
    return p ? hd__get_be32(p) : 0;
}

static uint64_t take_u64(log_reader *r)
{
    const uint8_t *p = take(r, 8);
    return p ? get_be64(p) : 0;
}

static int log_corrupt(herald_error *err, const char *what)
{
    return herald_fail(err, HERALD_ECORRUPT, "replication log: %s", what);
}

/* One 'P' or 'D' change: the document stored or deleted, its indexes kept in step. */
static int apply_doc(herald_txn *m, log_reader *r, bool put, herald_error *err)
{
    const uint8_t *nlen = take(r, 1);
    const uint8_t *name = nlen ? take(r, *nlen) : NULL;
    const uint8_t *id = take(r, HERALD_ID_BYTES);
    uint32_t len = put ? take_u32(r) : 0;
    const uint8_t *enc = put ? take(r, len) : NULL;
    if (r->bad) return log_corrupt(err, "a change is cut short");
    const hd_table *tab = hd__table_by_number(m->s, hd__get_be32(id));
    if (!tab || strlen(tab->def->name) != *nlen || memcmp(tab->def->name, name, *nlen))
        return herald_fail(err, HERALD_ECORRUPT,
                           "replication log: table `%.*s` is not this store's table %u", (int)*nlen,
                           (const char *)name, hd__get_be32(id));
    MDB_val k = {HERALD_ID_BYTES, (void *)id}, v;
    herald_value old = herald_undefined(), doc = herald_undefined();
    int rc = mdb_get(m->txn, m->s->docs, &k, &v);
    if (rc == 0) {
        rc = hd__doc_decode(id, &v, &old, err);
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    } else {
        rc = hd__mdb_fail(err, rc, "reading a document");
    }
    if (!rc && put) {
        MDB_val dv = {len, (void *)enc};
        rc = hd__doc_decode(id, &dv, &doc, err);
        const herald_value *ct = rc ? NULL : herald_object_get(&doc, "_creationTime");
        if (!rc && (!ct || ct->type != HERALD_FLOAT64))
            rc = log_corrupt(err, "a document without _creationTime");
        double at = rc ? 0 : ct->u.f;
        herald_object_remove(&doc, "_id");
        /* The primary validated it; a replica whose schema differs refuses it. */
        if (!rc) {
            herald_object_remove(&doc, "_creationTime");
            rc = check_user_doc(m, tab, &doc, err);
            if (!rc && herald_object_set(&doc, "_creationTime", 13, herald_float64(at)))
                rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
            if (rc && rc != HERALD_ENOMEM) {
                char why[200];
                snprintf(why, sizeof why, "%.199s", err ? err->message : "");
                rc = herald_fail(err, HERALD_ECORRUPT,
                                 "replication log: a document this store's schema refuses (%s)",
                                 why);
            }
        }
        if (!rc && at > m->group->last_ct) m->group->last_ct = at;
    }
    herald_object_remove(&old, "_id");
    if (!rc && (put || old.type != HERALD_UNDEFINED))
        rc = write_doc(m, tab, id, old.type == HERALD_UNDEFINED ? NULL : &old, put ? &doc : NULL,
                       err);
    herald_value_free(&old);
    herald_value_free(&doc);
    return rc;
}

/* One mutation record: its changes in a mutation of their own, under its version. */
static int apply_record(herald_group *g, log_reader *r, herald_error *err)
{
    uint64_t version = take_u64(r);
    uint32_t n = take_u32(r);
    if (r->bad) return log_corrupt(err, "a record is cut short");
    if (version <= g->version)
        return herald_fail(err, HERALD_ECORRUPT,
                           "replication log: version %llu is not newer than this store's %llu",
                           (unsigned long long)version, (unsigned long long)g->version);
    herald_txn *m;
    int rc = herald_mutation_begin(g, &m, err);
    if (rc) return rc;
    for (uint32_t i = 0; i < n && !rc; i++) {
        const uint8_t *kind = take(r, 1);
        if (!kind) {
            rc = log_corrupt(err, "a record is cut short");
        } else if (*kind == 'P' || *kind == 'D') {
            rc = apply_doc(m, r, *kind == 'P', err);
        } else if (*kind == 'I') {
            const uint8_t *key = take(r, IDEM_DIGEST);
            uint32_t len = take_u32(r);
            const uint8_t *rec = take(r, len);
            rc = r->bad || len < IDEM_HEAD ? log_corrupt(err, "a bad idempotency record")
                                           : idem_store(m, key, rec, len, err);
        } else {
            rc = log_corrupt(err, "an unknown change");
        }
    }
    if (rc) {
        herald_mutation_abort(m);
        return rc;
    }
    g->version = version - 1;
    return herald_mutation_commit(m, NULL, err);
}

int herald_group_apply_log(herald_group *g, const uint8_t *log, size_t len, herald_error *err)
{
    log_reader r = {log, log + len, false};
    while (r.p < r.end) {
        const uint8_t *kind = take(&r, 1);
        if (*kind != 'M') return log_corrupt(err, "a record does not start with 'M'");
        int rc = apply_record(g, &r, err);
        if (rc) return rc;
    }
    return 0;
}
