/*
 * The writer thread and document operations; see writer.h. Nothing here
 * may signal a request as done before its group is durable.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blobs.h"
#include "keycodec.h"
#include "log.h"
#include "repl.h"
#include "writer.h"

#define MAX_OPS 1000
/*
 * Expired idempotency records purged per group: at least this many, and
 * twice the group's requests, so the purge outpaces the records a busy
 * writer adds (at most one per request) while no group grows unbounded.
 */
#define MIN_PURGE 128

struct hd_writer {
    herald_store *s;
    size_t max_group;
    void (*wake)(void *);
    void *wake_ctx;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* Held while a group commits and is published: a snapshot taken under it
     * holds exactly the published groups (hd__writer_take_consistent). */
    pthread_mutex_t publish;
    hd_wreq *queue, *queue_tail;
    hd_wbatch *done, *done_tail;
    bool stopping, started;
    /* Functions: the runtime of this thread, and a newer bundle to build one from. */
    hd_fnrt *fnrt;
    hd_fnbundle *next_bundle;
    hd_fn_limits fn_limits;
    /* A schema change (hd__writer_change_schema): applied between groups,
     * its outcome kept under `lock` until hd__writer_schema_done() takes it. */
    herald_schema *next_schema;
    bool schema_pending, schema_done;
    int schema_rc;
    herald_error schema_err;
    double schema_seconds;
    /* Replication (repl.h), or NULL; and forwarded writes waiting for their version. */
    struct hd_repl *repl;
    hd_wreq *fwd_wait;
};

/* CLOCK_MONOTONIC seconds. */
static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *str_field(const herald_value *op, const char *name)
{
    const herald_value *v = herald_object_get(op, name);
    return v && v->type == HERALD_STRING ? v->u.s.ptr : NULL;
}

static int apply_one(herald_txn *m, const herald_value *op, size_t i, herald_value *out,
                     herald_error *err)
{
    *out = herald_null();
    if (op->type != HERALD_OBJECT)
        return herald_fail(err, HERALD_EINVAL, "operation %zu is not an object", i);
    const char *kind = str_field(op, "op");
    const char *id = str_field(op, "id");
    const herald_value *value = herald_object_get(op, "value");
    if (!kind) return herald_fail(err, HERALD_EINVAL, "operation %zu has no `op`", i);
    if (!strcmp(kind, "insert")) {
        const char *table = str_field(op, "table");
        if (!table || !value)
            return herald_fail(err, HERALD_EINVAL, "insert needs `table` and `value`");
        char newid[HERALD_ID_CHARS + 1];
        int rc = herald_insert(m, table, value, newid, err);
        return rc ? rc : herald_string(out, newid, HERALD_ID_CHARS);
    }
    if (!id) return herald_fail(err, HERALD_EINVAL, "%s needs an `id` string", kind);
    if (!strcmp(kind, "delete")) return herald_delete(m, id, err);
    if (!strcmp(kind, "replace")) {
        if (!value) return herald_fail(err, HERALD_EINVAL, "replace needs a `value`");
        return herald_replace(m, id, value, err);
    }
    if (!strcmp(kind, "patch")) {
        const herald_value *unset = herald_object_get(op, "unset");
        if (value && value->type != HERALD_OBJECT)
            return herald_fail(err, HERALD_EINVAL, "patch `value` must be an object");
        if (unset && unset->type != HERALD_ARRAY)
            return herald_fail(err, HERALD_EINVAL, "patch `unset` must be an array of names");
        herald_value fields;
        if (value) {
            if (herald_value_copy(&fields, value)) return HERALD_ENOMEM;
        } else {
            herald_object_init(&fields);
        }
        /* Removal travels as a list of names: JSON has no undefined. */
        for (size_t k = 0; unset && k < unset->u.arr.len; k++) {
            const herald_value *name = &unset->u.arr.items[k];
            if (name->type != HERALD_STRING || name->u.s.len == 0) {
                herald_value_free(&fields);
                return herald_fail(err, HERALD_EINVAL, "patch `unset` must list field names");
            }
            if (herald_object_set(&fields, name->u.s.ptr, name->u.s.len, herald_undefined())) {
                herald_value_free(&fields);
                return HERALD_ENOMEM;
            }
        }
        int rc = herald_patch(m, id, &fields, err);
        herald_value_free(&fields);
        return rc;
    }
    return herald_fail(err, HERALD_EINVAL, "unknown operation `%.40s`", kind);
}

int hd__apply_ops(herald_txn *m, const herald_value *ops, herald_value *result, herald_error *err)
{
    herald_array_init(result);
    if (ops->type != HERALD_ARRAY)
        return herald_fail(err, HERALD_EINVAL, "`ops` must be an array of operations");
    if (ops->u.arr.len > MAX_OPS)
        return herald_fail(err, HERALD_ELIMIT, "more than %d operations in one mutation", MAX_OPS);
    for (size_t i = 0; i < ops->u.arr.len; i++) {
        herald_value r;
        int rc = apply_one(m, &ops->u.arr.items[i], i, &r, err);
        if (!rc) rc = herald_array_push(result, r);
        if (rc) {
            herald_value_free(result);
            return rc;
        }
    }
    return 0;
}

void hd__wreq_free(hd_wreq *r)
{
    if (!r) return;
    herald_value_free(&r->ops);
    free(r->fn_path);
    herald_value_free(&r->fn_args);
    herald_value_free(&r->identity);
    herald_value_free(&r->error_data);
    herald_value_free(&r->result);
    free(r->idempotency_key);
    free(r->request_id);
    if (r->upload_tmp && !r->upload_placed) unlink(r->upload_tmp);
    free(r->upload_tmp);
    free(r->scheduled_id);
    free(r->sched_error);
    free(r->repl_log);
    free(r->forward_reply);
    free(r);
}

/* An upload's file, durable, under its row's id, before the row commits. */
static int place_upload(hd_wreq *r, herald_error *err)
{
    const herald_value *id =
        r->result.type == HERALD_ARRAY && r->result.u.arr.len ? &r->result.u.arr.items[0] : NULL;
    if (!id || id->type != HERALD_STRING)
        return herald_fail(err, HERALD_EINVAL, "an upload inserts its row first");
    int fd = open(r->upload_tmp, O_RDONLY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
    if (fd >= 0) close(fd);
    if (rc) return herald_fail(err, HERALD_EIO, "cannot sync the uploaded file");
    if ((rc = hd__blob_place(r->upload_tmp, id->u.s.ptr, err))) return rc;
    r->upload_placed = true;
    return 0;
}

/* The group did not commit: an upload's file renamed into place goes again. */
static void unplace_upload(hd_wreq *r)
{
    if (!r->upload_placed) return;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", r->upload_tmp);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    hd__blob_remove(dir, r->result.u.arr.items[0].u.s.ptr);
    r->upload_placed = false;
    r->upload_tmp[0] = 0; /* renamed away: nothing left under the temporary name */
}

void hd__wbatch_free(hd_wbatch *b)
{
    while (b) {
        hd_wbatch *next = b->next;
        herald_group_free(b->group);
        for (hd_wreq *r = b->reqs, *n; r; r = n) {
            n = r->next;
            hd__wreq_free(r);
        }
        free(b);
        b = next;
    }
}

/* Appends a length-prefixed string, so that parts never run together. */
static void put_part(hd_buf *b, const char *p, size_t n)
{
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    hd__buf_append(b, len, 4);
    hd__buf_append(b, p, n);
}

/*
 * Who asked, the scope of an idempotency key: the admin key, a signed-in
 * user (issuer and subject, as tokenIdentifier joins them), or the
 * anonymous callers, who share one scope.
 */
static void idem_scope(const hd_wreq *r, hd_buf *b)
{
    const herald_value *iss = herald_object_get(&r->identity, "issuer");
    const herald_value *sub = herald_object_get(&r->identity, "subject");
    if (r->admin) {
        hd__buf_byte(b, 'a');
    } else if (iss && sub && iss->type == HERALD_STRING && sub->type == HERALD_STRING) {
        hd__buf_byte(b, 'u');
        put_part(b, iss->u.s.ptr, iss->u.s.len);
        put_part(b, sub->u.s.ptr, sub->u.s.len);
    } else {
        hd__buf_byte(b, 'n');
    }
}

/* What was asked: the function (however its path was spelled) and its arguments, or raw ops. */
static void idem_request(const hd_wreq *r, hd_buf *b)
{
    if (!r->fn_path) {
        hd__buf_byte(b, 'o');
        hd__key_encode(b, &r->ops);
        return;
    }
    char norm[300];
    herald_error ignored;
    const char *path =
        hd__fn_path_normalize(r->fn_path, norm, sizeof norm, &ignored) == 0 ? norm : r->fn_path;
    herald_value none;
    herald_object_init(&none);
    hd__buf_byte(b, 'f');
    put_part(b, path, strlen(path));
    hd__key_encode(b, r->fn_args.type == HERALD_UNDEFINED ? &none : &r->fn_args);
    herald_value_free(&none);
}

/* The state of a `_scheduled_functions` row: {kind[, error]}, and completedTime once it ended. */
static int set_state(herald_txn *m, const char *id, const char *kind, const char *error,
                     herald_error *err)
{
    herald_value patch, state, v;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    herald_object_init(&patch);
    herald_object_init(&state);
    bool failed =
        herald_string(&v, kind, strlen(kind)) || herald_object_set(&state, "kind", 4, v) ||
        (error &&
         (herald_string(&v, error, strlen(error)) || herald_object_set(&state, "error", 5, v))) ||
        herald_object_set(&patch, "state", 5, state) ||
        (strcmp(kind, "inProgress") &&
         herald_object_set(&patch, "completedTime", 13,
                           herald_float64((double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6)));
    int rc = failed ? herald_fail(err, HERALD_ENOMEM, "out of memory")
                    : herald_patch(m, id, &patch, err);
    herald_value_free(&patch);
    return rc;
}

/*
 * A scheduled run: nothing if its row is no longer pending (cancelled, or
 * run already); else the function, and the row's success, in one commit;
 * a failure rolls the function back and records the error instead.
 */
static void run_scheduled(hd_writer *w, herald_group *g, hd_wreq *r)
{
    herald_txn *m;
    herald_value row = herald_undefined();
    if ((r->rc = herald_mutation_begin(g, &m, &r->err))) return;
    herald_txn_allow_system(m, true);
    int rc = herald_get(m, "_scheduled_functions", r->scheduled_id, &row, NULL, &r->err);
    const herald_value *kind =
        rc ? NULL : herald_object_get(herald_object_get(&row, "state"), "kind");
    bool pending = kind && kind->type == HERALD_STRING && !strcmp(kind->u.s.ptr, "pending");
    bool running = kind && kind->type == HERALD_STRING && !strcmp(kind->u.s.ptr, "inProgress");
    herald_value_free(&row);
    if (r->sched_finish ? !running : !pending) {
        herald_mutation_abort(m);
        r->rc = 0;
        r->replayed = true; /* nothing written */
        return;
    }
    if (r->sched_start || r->sched_finish) {
        /* An action: it runs at the action pool, its row says so first and how it ended last. */
        r->rc = set_state(m, r->scheduled_id,
                          r->sched_start   ? "inProgress"
                          : r->sched_error ? "failed"
                                           : "success",
                          r->sched_finish ? r->sched_error : NULL, &r->err);
        if (r->rc) {
            herald_mutation_abort(m);
            return;
        }
        r->set_index = herald_group_count(g);
        r->rc = herald_mutation_commit(m, &r->version, &r->err);
        return;
    }
    hd_fncall call = {.path = r->fn_path,
                      .args = &r->fn_args,
                      .identity = &r->identity,
                      .admin = true, /* internal functions too, as Convex schedules them */
                      .kind = HD_FN_MUTATION,
                      .txn = m};
    herald_txn_allow_system(m, false);
    r->rc = w->fnrt ? hd__fn_call(w->fnrt, &call, &r->result, &r->error_data, &r->err)
                    : herald_fail(&r->err, HERALD_ENOTFOUND, "this app has no functions");
    herald_txn_allow_system(m, true);
    if (!r->rc) r->rc = set_state(m, r->scheduled_id, "success", NULL, &r->err);
    if (!r->rc) {
        r->set_index = herald_group_count(g);
        r->rc = herald_mutation_commit(m, &r->version, &r->err);
        return;
    }
    herald_mutation_abort(m);
    herald_error failure = r->err;
    if ((r->rc = herald_mutation_begin(g, &m, &r->err))) return;
    herald_txn_allow_system(m, true);
    r->rc = set_state(m, r->scheduled_id, "failed", failure.message, &r->err);
    if (r->rc) {
        herald_mutation_abort(m);
        return;
    }
    r->set_index = herald_group_count(g);
    r->rc = herald_mutation_commit(m, &r->version, &r->err);
    r->err = failure; /* for the log: the run failed, its failure is recorded */
}

/* A record of the stream, on a replica: applied under its versions, its sequence noted. */
static void apply_record(hd_writer *w, herald_group *g, hd_wreq *r, uint64_t *seq)
{
    r->replayed = true; /* nothing to answer: its write sets are the group's */
    /* Delivered twice (a subscription that started again): the store has it. */
    if (r->repl_seq <= (*seq ? *seq : hd__repl_applied_seq(w->repl))) return;
    r->rc = herald_group_apply_log(g, r->repl_log, r->repl_len, &r->err);
    if (!r->rc) r->rc = herald_group_set_meta(g, "repl_seq", r->repl_seq, &r->err);
    if (!r->rc) *seq = r->repl_seq;
}

/* Runs one request as a mutation of group `g`. */
static void run_request(hd_writer *w, herald_group *g, hd_wreq *r)
{
    if (r->forwarded) return; /* the primary ran it; answered as it said */
    if (w->repl && !hd__repl_is_primary(w->repl)) {
        /* Queued while this node was primary, or forwarded here by a node that
         * still thinks it is: only the primary writes. */
        r->rc = herald_fail(&r->err, HERALD_EBUSY,
                            "this node is no longer the primary: send the write again");
        return;
    }
    if (r->scheduled_id) {
        run_scheduled(w, g, r);
        return;
    }
    herald_txn *m;
    hd_buf scope = HD_BUF_INIT, request = HD_BUF_INIT;
    herald_idem idem = {.key = r->idempotency_key};
    if (r->idempotency_key) {
        idem_scope(r, &scope);
        idem_request(r, &request);
        if (scope.failed || request.failed) {
            r->rc = herald_fail(&r->err, HERALD_ENOMEM, "out of memory");
            goto done;
        }
        idem.scope = scope.p;
        idem.scope_len = scope.len;
        idem.request = request.p;
        idem.request_len = request.len;
    }
    r->rc = herald_mutation_begin(g, &m, &r->err);
    if (r->rc) goto done;
    herald_txn_allow_system(m, r->system);
    if (r->idempotency_key) {
        /* Already committed under this key: the first result, nothing applied;
         * or the caller used the key for something else: refused. */
        r->rc = herald_idem_get(m, &idem, &r->result, &r->version, &r->err);
        if (r->rc != HERALD_ENOTFOUND) {
            r->replayed = r->rc == 0;
            herald_mutation_abort(m);
            goto done;
        }
    }
    if (r->fn_path) {
        hd_fncall call = {.path = r->fn_path,
                          .args = &r->fn_args,
                          .identity = &r->identity,
                          .admin = r->admin,
                          .internal = r->internal,
                          .kind = HD_FN_MUTATION,
                          .txn = m};
        r->rc = w->fnrt ? hd__fn_call(w->fnrt, &call, &r->result, &r->error_data, &r->err)
                        : herald_fail(&r->err, HERALD_ENOTFOUND, "this app has no functions");
    } else {
        r->rc = hd__apply_ops(m, &r->ops, &r->result, &r->err);
    }
    if (!r->rc && r->idempotency_key) r->rc = herald_idem_put(m, &idem, &r->result, &r->err);
    if (!r->rc && r->upload_tmp) r->rc = place_upload(r, &r->err);
    if (r->rc) {
        herald_mutation_abort(m);
        goto done;
    }
    r->set_index = herald_group_count(g);
    r->rc = herald_mutation_commit(m, &r->version, &r->err);
done:
    hd__buf_free(&scope);
    hd__buf_free(&request);
}

/* Builds this thread's runtime from a bundle the loop handed over, if any. */
static void update_functions(hd_writer *w)
{
    pthread_mutex_lock(&w->lock);
    hd_fnbundle *b = w->next_bundle;
    w->next_bundle = NULL;
    pthread_mutex_unlock(&w->lock);
    if (!b) return;
    hd_fnrt *rt = NULL;
    herald_error err = {0};
    if (hd__fnrt_new(b, herald_store_schema(w->s), &w->fn_limits, &rt, &err) == 0) {
        hd__fnrt_free(w->fnrt);
        w->fnrt = rt;
    } else {
        /* The loop built the same bundle; only memory can fail here. */
        hd__log(HD_LOG_WARN, "reload_refused",
                "herald: the writer keeps its previous functions: %s", err.message);
    }
    hd__fnbundle_unref(b);
}

void hd__writer_set_functions(hd_writer *w, hd_fnbundle *bundle, const hd_fn_limits *limits)
{
    pthread_mutex_lock(&w->lock);
    hd__fnbundle_unref(w->next_bundle);
    w->next_bundle = hd__fnbundle_ref(bundle);
    if (limits) w->fn_limits = *limits;
    pthread_mutex_unlock(&w->lock);
}

/*
 * Applies a schema change handed over by the loop, between two groups (no
 * group is open, so the store accepts it); `lock` is held on entry and on
 * return. Writes queued meanwhile wait for it; readers go on with their
 * snapshots, and the loop is woken to take the outcome.
 */
static void change_schema(hd_writer *w)
{
    herald_schema *schema = w->next_schema;
    w->next_schema = NULL;
    pthread_mutex_unlock(&w->lock);
    herald_error err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = herald_store_set_schema(w->s, schema, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_mutex_lock(&w->lock);
    w->schema_rc = rc;
    w->schema_err = err;
    w->schema_seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    w->schema_done = true;
    w->wake(w->wake_ctx);
}

int hd__writer_change_schema(hd_writer *w, herald_schema *schema, herald_error *err)
{
    pthread_mutex_lock(&w->lock);
    if (!w->started || w->stopping || w->schema_pending) {
        pthread_mutex_unlock(&w->lock);
        herald_schema_free(schema);
        return herald_fail(err, HERALD_EBUSY, "the writer cannot change the schema now");
    }
    w->next_schema = schema;
    w->schema_pending = true;
    w->schema_done = false;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

bool hd__writer_schema_done(hd_writer *w, int *rc, double *seconds, herald_error *err)
{
    pthread_mutex_lock(&w->lock);
    bool done = w->schema_pending && w->schema_done;
    if (done) {
        w->schema_pending = false;
        *rc = w->schema_rc;
        if (seconds) *seconds = w->schema_seconds;
        if (err) *err = w->schema_err;
    }
    pthread_mutex_unlock(&w->lock);
    return done;
}

/* A forwarded write whose answer may go now: failed, applied here, or waited long enough. */
static bool fwd_is_ready(hd_writer *w, const hd_wreq *r, double now)
{
    return r->rc || r->version <= herald_store_version(w->s) || now >= r->forward_deadline;
}

/* Moves the forwarded writes that may be answered onto the list at *tail; `lock` held. */
static size_t take_forwarded(hd_writer *w, hd_wreq **take, hd_wreq **tail)
{
    if (!w->fwd_wait) return 0; /* a primary's or a single node's: never any */
    double now = mono_now();
    size_t n = 0;
    for (hd_wreq **p = &w->fwd_wait; *p;) {
        hd_wreq *r = *p;
        if (!fwd_is_ready(w, r, now)) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        r->next = NULL;
        if (*tail)
            (*tail)->next = r;
        else
            *take = r;
        *tail = r;
        n++;
    }
    return n;
}

static bool any_forwarded_ready(hd_writer *w)
{
    if (!w->fwd_wait) return false;
    double now = mono_now();
    for (hd_wreq *r = w->fwd_wait; r; r = r->next)
        if (fwd_is_ready(w, r, now)) return true;
    return false;
}

/* Times a replica's records go again after the map ran out: enough doublings to reach any
 * map size. */
#define MAX_RECORD_TRIES 40

/*
 * A replica's records that ran out of map: taken out of `keep` (in order)
 * and put first on the retry list, for the next group, after the map grew;
 * the group is dropped all the same. Past MAX_RECORD_TRIES (a map at its
 * maximum) they stay and fail: false.
 */
static bool requeue_records(hd_wreq **keep, hd_wreq **keep_tail, hd_wreq **retry,
                            herald_error *apply_err)
{
    hd_wreq *first = NULL;
    for (hd_wreq *r = *keep; r && !first; r = r->next)
        if (r->repl_log) first = r;
    if (!first || first->attempts++ >= MAX_RECORD_TRIES) {
        herald_fail(apply_err, HERALD_EMAPFULL,
                    "the database is full (its map is at its maximum): records cannot apply");
        return false;
    }
    hd_wreq *kept = NULL, **kt = &kept, *again = NULL, **at = &again;
    *keep_tail = NULL;
    for (hd_wreq *r = *keep, *next; r; r = next) {
        next = r->next;
        r->next = NULL;
        if (r->repl_log) {
            r->rc = 0;
            r->err = (herald_error){0};
            *at = r;
            at = &r->next;
        } else {
            *kt = r;
            kt = &r->next;
            *keep_tail = r;
        }
    }
    *at = *retry;
    *retry = again;
    *keep = kept;
    return true;
}

/*
 * Replication, before the group commits: the primary appends the group's
 * log to the stream and notes its sequence; a replica's failed record, or
 * an append that failed, leaves nothing of the group. Returns 0 or the
 * code every request of the group fails with (and *gerr).
 */
static int replicate_group(hd_writer *w, herald_group *g, bool lead, int apply_rc,
                           const herald_error *apply_err, bool report, uint64_t *seq,
                           herald_error *gerr)
{
    int rc = apply_rc;
    if (!rc && lead) {
        size_t len;
        const uint8_t *log = herald_group_log(g, &len);
        if (len && !(rc = hd__repl_append(w->repl, log, len, seq, gerr)))
            rc = herald_group_set_meta(g, "repl_seq", *seq, gerr);
    }
    if (rc) herald_group_abort(g);
    if (apply_rc) {
        *gerr = *apply_err;
        /* Out of map, the records go again once the map has grown (the abort grew it);
         * any other failure starts the node again from a snapshot. */
        if (report) hd__repl_apply_failed(w->repl, apply_err);
    }
    return rc;
}

static void *writer_main(void *arg)
{
    hd_writer *w = arg;
    hd_wreq *retry = NULL; /* requests that ran out of map: once more after growth */
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->queue && !retry && !w->stopping && !w->next_schema && !any_forwarded_ready(w)) {
            if (!w->fwd_wait) {
                pthread_cond_wait(&w->cond, &w->lock);
                continue;
            }
            /* Forwarded writes wait for their version, or their deadline. */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 50 * 1000 * 1000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&w->cond, &w->lock, &until);
        }
        if (w->next_schema) change_schema(w);
        if (!w->queue && !retry && !any_forwarded_ready(w)) {
            bool stop = w->stopping;
            pthread_mutex_unlock(&w->lock);
            if (stop) break;
            continue;
        }
        /* Take up to max_group requests, retries first. */
        hd_wreq *take = retry, *tail = NULL;
        size_t n = 0;
        for (tail = retry; tail && tail->next; tail = tail->next)
            n++;
        if (retry) n++;
        retry = NULL;
        while (w->queue && n < w->max_group) {
            hd_wreq *r = w->queue;
            w->queue = r->next;
            r->next = NULL;
            if (tail)
                tail->next = r;
            else
                take = r;
            tail = r;
            n++;
        }
        if (!w->queue) w->queue_tail = NULL;
        n += take_forwarded(w, &take, &tail);
        pthread_mutex_unlock(&w->lock);
        update_functions(w);
        bool lead = w->repl && hd__repl_is_primary(w->repl);
        uint64_t seq = 0, applied_seq = 0;
        int apply_rc = 0;
        herald_error apply_err = {0};

        hd_wbatch *b = calloc(1, sizeof *b);
        herald_error gerr = {0};
        /* Out of memory for the batch: the requests fail without running. */
        int grc = b ? herald_group_begin(w->s, &b->group, &gerr) : HERALD_ENOMEM;
        if (!grc && lead) herald_group_log_start(b->group);
        if (!grc) {
            /* A failed purge changes nothing; the next group tries again. */
            herald_error perr = {0};
            size_t budget = 2 * n > MIN_PURGE ? 2 * n : MIN_PURGE;
            if (herald_idem_purge(b->group, budget, NULL, &perr))
                hd__log(HD_LOG_WARN, "idempotency_purge",
                        "herald: expired idempotency records stay for now: %s", perr.message);
        }
        hd_wreq *keep = NULL, *keep_tail = NULL, *retry_tail = NULL;
        for (hd_wreq *r = take, *next; r; r = next) {
            next = r->next;
            r->next = NULL;
            if (grc) {
                r->rc = grc;
                r->err = gerr;
            } else if (r->repl_log) {
                /* After a record that failed, none of the next may apply. */
                if (apply_rc) {
                    r->rc = apply_rc;
                    r->err = apply_err;
                } else {
                    apply_record(w, b->group, r, &applied_seq);
                    if (r->rc) {
                        apply_rc = r->rc;
                        apply_err = r->err;
                    }
                }
            } else {
                run_request(w, b->group, r);
                if (r->rc == HERALD_EMAPFULL && r->attempts++ == 0) {
                    /* Once more in the next group, after the map has grown. */
                    herald_value_free(&r->result);
                    herald_value_free(&r->error_data);
                    if (retry_tail)
                        retry_tail->next = r;
                    else
                        retry = r;
                    retry_tail = r;
                    continue;
                }
            }
            if (keep_tail)
                keep_tail->next = r;
            else
                keep = r;
            keep_tail = r;
        }
        bool requeued =
            apply_rc == HERALD_EMAPFULL && requeue_records(&keep, &keep_tail, &retry, &apply_err);
        if (!b) {
            /* Keep them queued; memory may come back. */
            pthread_mutex_lock(&w->lock);
            if (keep_tail) {
                keep_tail->next = w->queue;
                w->queue = keep;
                if (!w->queue_tail) w->queue_tail = keep_tail;
            }
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        b->reqs = keep;
        if (!grc && (lead || apply_rc))
            grc = replicate_group(w, b->group, lead, apply_rc, &apply_err, !requeued, &seq, &gerr);
        if (grc) {
            for (hd_wreq *r = keep; r; r = r->next)
                if (r->rc == 0 && !r->forwarded) {
                    r->rc = grc;
                    r->err = gerr;
                    unplace_upload(r);
                }
        }
        pthread_mutex_lock(&w->publish);
        if (!grc) {
            b->commit_rc = herald_group_commit(b->group, &gerr);
            if (!b->commit_rc && w->repl && (seq || applied_seq))
                hd__repl_committed(w->repl, seq ? seq : applied_seq);
            b->committed_at = mono_now();
            if (b->commit_rc)
                for (hd_wreq *r = keep; r; r = r->next)
                    if (r->rc == 0) {
                        r->rc = b->commit_rc;
                        r->err = gerr;
                        unplace_upload(r);
                    }
        } else {
            b->commit_rc = grc;
        }
        pthread_mutex_lock(&w->lock);
        if (w->done_tail)
            w->done_tail->next = b;
        else
            w->done = b;
        w->done_tail = b;
        pthread_mutex_unlock(&w->lock);
        pthread_mutex_unlock(&w->publish);
        w->wake(w->wake_ctx);
    }
    return NULL;
}

int hd__writer_start(herald_store *s, size_t max_group, void (*wake)(void *), void *wake_ctx,
                     hd_writer **out, herald_error *err)
{
    hd_writer *w = calloc(1, sizeof *w);
    if (!w) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    w->s = s;
    w->max_group = max_group ? max_group : 1000;
    w->wake = wake;
    w->wake_ctx = wake_ctx;
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->publish, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        hd__writer_free(w);
        return herald_fail(err, HERALD_ESTORE, "cannot start the writer thread");
    }
    w->started = true;
    *out = w;
    return 0;
}

void hd__writer_set_repl(hd_writer *w, struct hd_repl *r)
{
    pthread_mutex_lock(&w->lock);
    w->repl = r;
    pthread_mutex_unlock(&w->lock);
}

void hd__writer_submit_forwarded(hd_writer *w, hd_wreq *r)
{
    r->forwarded = true;
    r->replayed = true; /* nothing written by this node for it: the stream's record did */
    r->forward_deadline = mono_now() + 10.0;
    pthread_mutex_lock(&w->lock);
    r->next = w->fwd_wait;
    w->fwd_wait = r;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void hd__writer_submit(hd_writer *w, hd_wreq *r)
{
    /* A client's write on a replica: to the primary (never a record, an answer, or a
     * write the primary got from another node). */
    if (w->repl && !r->repl_log && !r->forwarded && !r->forward_reply &&
        !hd__repl_is_primary(w->repl)) {
        hd__repl_forward(w->repl, r);
        return;
    }
    r->submitted_at = mono_now();
    r->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->queue_tail)
        w->queue_tail->next = r;
    else
        w->queue = r;
    w->queue_tail = r;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

bool hd__writer_health(hd_writer *w, size_t *queued, double *oldest_wait)
{
    double now = mono_now();
    size_t n = 0;
    pthread_mutex_lock(&w->lock);
    /* The thread leaves its loop only once stopping. */
    bool running = w->started && !w->stopping;
    for (hd_wreq *r = w->queue; r; r = r->next)
        n++;
    *oldest_wait = w->queue ? now - w->queue->submitted_at : 0;
    pthread_mutex_unlock(&w->lock);
    *queued = n;
    return running;
}

hd_wbatch *hd__writer_take_done(hd_writer *w)
{
    pthread_mutex_lock(&w->lock);
    hd_wbatch *b = w->done;
    w->done = w->done_tail = NULL;
    pthread_mutex_unlock(&w->lock);
    return b;
}

/* The snapshot and the batches, the publish lock held (it is released). */
static int take_locked(hd_writer *w, hd_wbatch **batches, herald_txn **snapshot, herald_error *err)
{
    int rc = herald_read_begin(w->s, snapshot, err);
    if (rc == 0) *batches = hd__writer_take_done(w);
    pthread_mutex_unlock(&w->publish);
    return rc;
}

int hd__writer_take_consistent(hd_writer *w, hd_wbatch **batches, herald_txn **snapshot,
                               herald_error *err)
{
    *batches = NULL;
    *snapshot = NULL;
    /* Never wait for a commit in progress: the writer wakes the loop after it. */
    if (pthread_mutex_trylock(&w->publish) != 0) return HERALD_EBUSY;
    return take_locked(w, batches, snapshot, err);
}

int hd__writer_take_consistent_wait(hd_writer *w, hd_wbatch **batches, herald_txn **snapshot,
                                    herald_error *err)
{
    *batches = NULL;
    *snapshot = NULL;
    pthread_mutex_lock(&w->publish);
    return take_locked(w, batches, snapshot, err);
}

void hd__writer_stop(hd_writer *w)
{
    if (!w || !w->started) return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    w->started = false;
}

void hd__writer_free(hd_writer *w)
{
    if (!w) return;
    hd__writer_stop(w);
    hd__wbatch_free(w->done);
    for (hd_wreq *r = w->queue, *n; r; r = n) {
        n = r->next;
        hd__wreq_free(r);
    }
    for (hd_wreq *r = w->fwd_wait, *n; r; r = n) {
        n = r->next;
        hd__wreq_free(r);
    }
    hd__fnrt_free(w->fnrt);
    hd__fnbundle_unref(w->next_bundle);
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->publish);
    pthread_cond_destroy(&w->cond);
    herald_schema_free(w->next_schema);
    free(w);
}
