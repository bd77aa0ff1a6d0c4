/*
 * Subscriptions: query instances shared by identical subscriptions, their
 * read sets registered in the read-set index, and the work after a commit:
 * find the instances whose read set the commit touched (and only those),
 * re-run each once on a fresh snapshot, encode each diff once, and send
 * every connection one update frame per commit, before the acks.
 *
 * Never send a client a state that was not committed, and never send a
 * mutation's ack before the updates it caused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "server.h"

#define INITIAL_BUCKETS 1024

static uint64_t hash_text(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static bool ensure_buckets(hd_server *s)
{
    if (s->by_key) return true;
    s->nbuckets = INITIAL_BUCKETS;
    s->by_key = calloc(s->nbuckets, sizeof *s->by_key);
    s->by_id = calloc(s->nbuckets, sizeof *s->by_id);
    return s->by_key && s->by_id;
}

static hd_qinst *find_by_key(hd_server *s, const char *key)
{
    for (hd_qinst *q = s->by_key[hash_text(key) % s->nbuckets]; q; q = q->hash_next)
        if (!strcmp(q->key, key)) return q;
    return NULL;
}

static hd_qinst *find_by_id(hd_server *s, uint64_t id)
{
    if (!s->by_id) return NULL;
    for (hd_qinst *q = s->by_id[id % s->nbuckets]; q; q = q->id_next)
        if (q->id == id) return q;
    return NULL;
}

static void unlink_qinst(hd_server *s, hd_qinst *qi)
{
    hd_qinst **p = &s->by_key[hash_text(qi->key) % s->nbuckets];
    while (*p && *p != qi)
        p = &(*p)->hash_next;
    if (*p) *p = qi->hash_next;
    p = &s->by_id[qi->id % s->nbuckets];
    while (*p && *p != qi)
        p = &(*p)->id_next;
    if (*p) *p = qi->id_next;
    s->ninst--;
}

static void free_qinst(hd_qinst *qi)
{
    free(qi->key);
    herald_query_free(qi->query);
    free(qi->fn_path);
    free(qi->journal);
    herald_value_free(&qi->fn_args);
    herald_value_free(&qi->identity);
    herald_value_free(&qi->spec);
    herald_value_free(&qi->err_data);
    herald_value_free(&qi->result);
    herald_read_set_free(&qi->rs);
    free(qi->subscribers);
    free(qi->sub_ids);
    free(qi);
}

/* ---- evaluations at the evaluator threads ---- */

/* Write sets the loop processed while evaluations were out (hd__sub_keep_batches). */
typedef struct hd_wslog {
    struct hd_wslog *next;
    hd_wbatch *batches;
    uint64_t version; /* the loop's version after them */
} hd_wslog;

static void pending_unlink(hd_server *s, hd_qinst *qi)
{
    if (!qi->pending) return;
    if (qi->pending_prev)
        qi->pending_prev->pending_next = qi->pending_next;
    else
        s->pending = qi->pending_next;
    if (qi->pending_next) qi->pending_next->pending_prev = qi->pending_prev;
    qi->pending_prev = qi->pending_next = NULL;
    qi->pending = false;
}

/* Frees the logged write sets no evaluation out can need: all of them when none is out. */
static void wslog_trim(hd_server *s)
{
    uint64_t oldest = UINT64_MAX;
    for (hd_qinst *qi = s->pending; qi; qi = qi->pending_next)
        if (qi->pending_since < oldest) oldest = qi->pending_since;
    while (s->wslog && (!s->pending || s->wslog->version <= oldest)) {
        hd_wslog *l = s->wslog;
        s->wslog = l->next;
        hd__wbatch_free(l->batches);
        free(l);
    }
    if (!s->wslog) s->wslog_tail = NULL;
}

void hd__sub_keep_batches(hd_server *s, hd_wbatch *batches, uint64_t version)
{
    hd_wslog *l = s->pending && batches ? malloc(sizeof *l) : NULL;
    if (!l) {
        /* Nothing out (or no memory: the evaluations out are then run again, see below). */
        hd__wbatch_free(batches);
        if (s->pending && batches)
            for (hd_qinst *qi = s->pending; qi; qi = qi->pending_next)
                qi->pending_generation--;
        return;
    }
    *l = (hd_wslog){.batches = batches, .version = version};
    if (s->wslog_tail)
        s->wslog_tail->next = l;
    else
        s->wslog = l;
    s->wslog_tail = l;
}

static void on_hit(void *ctx, uint64_t owner)
{
    (void)owner;
    *(bool *)ctx = true;
}

/*
 * Whether a commit the loop processed after snapshot `version` wrote into
 * read set `rs` (conservatively: a logged list of batches counts whole if
 * it ends after `version`).
 */
static bool written_since(hd_server *s, uint64_t version, const herald_read_set *rs)
{
    hd_rsindex *x;
    bool hit = false;
    if (!s->wslog) return false;
    if (hd__rsindex_new(&x)) return true;
    if (hd__rsindex_add(x, 1, rs)) hit = true;
    for (hd_wslog *l = s->wslog; l && !hit; l = l->next) {
        if (l->version <= version) continue;
        size_t n = 0;
        for (hd_wbatch *b = l->batches; b; b = b->next)
            n += herald_group_count(b->group);
        const herald_write_set **ws = n ? malloc(n * sizeof *ws) : NULL;
        if (n && !ws) {
            hit = true;
            break;
        }
        size_t k = 0;
        for (hd_wbatch *b = l->batches; b; b = b->next)
            for (size_t i = 0; i < herald_group_count(b->group); i++)
                ws[k++] = herald_group_write_set(b->group, i);
        if (n && hd__rsindex_match(x, ws, n, on_hit, &hit)) hit = true;
        free(ws);
    }
    hd__rsindex_free(x);
    return hit;
}

/* Sends the instance's query to an evaluator thread (again, if it is out already). */
static int hand_over(hd_server *s, hd_qinst *qi)
{
    /* Each instance its own lane: re-runs of different instances run side by side,
     * never two of the same one. */
    hd_job *j = hd__eval_job_new(HD_EVAL_LANE_INSTANCE | qi->id, qi->fn_path, &qi->fn_args,
                                 &qi->identity, qi->admin);
    if (!j) return HERALD_ENOMEM;
    j->want_rs = true;
    j->qinst_id = qi->id;
    if (qi->journal && !(j->journal = strdup(qi->journal))) {
        hd__eval_job_free(j);
        return HERALD_ENOMEM;
    }
    if (!qi->pending) {
        qi->pending = true;
        qi->pending_prev = NULL;
        qi->pending_next = s->pending;
        if (s->pending) s->pending->pending_prev = qi;
        s->pending = qi;
        for (size_t k = 0; k < qi->nsubscribers; k++)
            qi->subscribers[k]->npending++;
    }
    qi->pending_since = s->seen_version;
    qi->pending_generation = s->fn_generation;
    hd__eval_submit(s->eval, j);
    return 0;
}

static char *instance_key(const hd_conn *c, const hd_subspec *spec, const char *norm);

/*
 * The instance's first run fixed its page's end (`journal`, taken): later
 * runs keep it, and the instance is found under the key with that journal,
 * so that a new subscription to the same first page gets a page of its own
 * while a client coming back with the journal shares this one.
 */
static void set_journal(hd_server *s, hd_qinst *qi, char *journal)
{
    if (qi->journal || !journal) {
        free(journal);
        return;
    }
    qi->journal = journal;
    /* A raw page reads its end from the query itself (a function's from its call). */
    if (qi->query && herald_query_set_journal(qi->query, journal)) {
        qi->journal = NULL;
        free(journal);
        return;
    }
    size_t n = strlen(qi->key) + strlen(journal) + 4;
    char *key = malloc(n);
    if (!key) return; /* still found by its first key: shared a little longer */
    snprintf(key, n, "%s|j|%s", qi->key, journal);
    hd_qinst **p = &s->by_key[hash_text(qi->key) % s->nbuckets];
    while (*p && *p != qi)
        p = &(*p)->hash_next;
    if (*p) *p = qi->hash_next;
    free(qi->key);
    qi->key = key;
    qi->hash_next = s->by_key[hash_text(key) % s->nbuckets];
    s->by_key[hash_text(key) % s->nbuckets] = qi;
}

/*
 * Runs the instance's query on `snapshot` (NULL: a fresh one); the previous
 * result goes to *old. A query function known to be slow, or one that runs
 * over the inline budget, goes to an evaluator thread instead: *handed is
 * then set and the instance is left as it was (*old untouched).
 */
static int evaluate(hd_server *s, hd_qinst *qi, herald_txn *snapshot, herald_value *old,
                    bool *handed)
{
    *handed = false;
    bool may_hand = s->eval && !qi->query && s->fnrt;
    if (may_hand && hd__eval_is_slow(s->eval, qi->fn_path) && hand_over(s, qi) == 0) {
        *handed = true;
        return 0;
    }
    herald_txn *t = snapshot;
    herald_read_set rs;
    herald_value result;
    herald_error err = {0};
    herald_read_set_init(&rs);
    herald_value err_data = herald_undefined();
    bool yielded = false;
    char *journal = NULL;
    double t0 = may_hand ? hd__eval_cpu_now() : 0;
    int rc = t ? 0 : herald_read_begin(s->store, &t, &err);
    if (rc == 0) {
        if (qi->query) {
            rc = herald_query_run(qi->query, t, NULL, &result, &rs, &err);
            const herald_value *end = rc || qi->journal || !herald_query_paginates(qi->query)
                                          ? NULL
                                          : herald_object_get(&result, "continueCursor");
            if (end && end->type == HERALD_STRING && end->u.s.len) journal = strdup(end->u.s.ptr);
        } else if (s->fnrt) {
            hd_fncall call = {.path = qi->fn_path,
                              .args = &qi->fn_args,
                              .identity = &qi->identity,
                              .admin = qi->admin,
                              .kind = HD_FN_QUERY,
                              .txn = t,
                              .rs = &rs,
                              .yield_after = may_hand ? t0 + HD_EVAL_INLINE_SECONDS : 0,
                              .yielded = &yielded,
                              .journal = qi->journal,
                              .journal_out = &journal};
            rc = hd__fn_call(s->fnrt, &call, &result, &err_data, &err);
        } else {
            rc = herald_fail(&err, HERALD_ENOTFOUND, "this app has no functions");
        }
        if (!yielded) qi->version = herald_txn_version(t);
        if (!snapshot) herald_txn_end(t);
    }
    if (may_hand)
        hd__eval_note(s->eval, qi->fn_path,
                      yielded ? HD_EVAL_INLINE_SECONDS : hd__eval_cpu_now() - t0);
    if (yielded) {
        free(journal);
        journal = NULL;
    }
    if (yielded && hand_over(s, qi) == 0) {
        herald_read_set_free(&rs);
        herald_value_free(&err_data);
        *handed = true;
        return 0;
    }
    herald_value_free(&qi->err_data);
    qi->err_data = err_data;
    set_journal(s, qi, journal);
    if (old)
        *old = qi->result;
    else
        herald_value_free(&qi->result);
    qi->rc = rc;
    qi->err = err;
    if (rc) {
        /* An error result still keeps the ranges it read, so a later commit can fix it. */
        qi->result = herald_undefined();
    } else {
        qi->result = result;
    }
    herald_read_set_free(&qi->rs);
    qi->rs = rs;
    if (hd__rsindex_add(s->rsindex, qi->id, &qi->rs)) {
        /* The index still holds the old ranges: say so rather than go stale silently. */
        herald_value_free(&qi->result);
        qi->result = herald_undefined();
        qi->rc = herald_fail(&qi->err, HERALD_ENOMEM, "out of memory: subscription stopped");
        return qi->rc;
    }
    return rc;
}

/* {"type":"result","id":...,"version":V,"value":...} or an error frame. */
static void send_result(hd_conn *c, const char *sub_id, hd_qinst *qi)
{
    if (c->sync) {
        hd__sync_query(c, sub_id, qi, NULL);
        return;
    }
    if (qi->rc) {
        hd__proto_error_data(c, sub_id, qi->rc, qi->err.message, &qi->err_data);
        return;
    }
    hd_buf b = HD_BUF_INIT;
    char *value = herald_value_to_json(&qi->result);
    herald_value id;
    herald_string(&id, sub_id, strlen(sub_id));
    char *idj = herald_value_to_json(&id);
    herald_value_free(&id);
    char head[64];
    snprintf(head, sizeof head, ",\"version\":%llu,\"value\":", (unsigned long long)qi->version);
    hd__buf_str(&b, "{\"type\":\"result\",\"id\":");
    if (idj) hd__buf_str(&b, idj);
    hd__buf_str(&b, head);
    if (value) hd__buf_str(&b, value);
    if (qi->journal) {
        hd__buf_str(&b, ",\"journal\":");
        hd__json_str(&b, qi->journal);
    }
    hd__buf_byte(&b, '}');
    if (!b.failed && value && idj) hd__conn_send(c, (char *)b.p, b.len);
    free(value);
    free(idj);
    hd__buf_free(&b);
}

/* A subscription's query failed: an error frame, or a QueryFailed. */
static void send_failure(hd_conn *c, const char *sub_id, const hd_qinst *qi)
{
    if (c->sync)
        hd__sync_query(c, sub_id, qi, NULL);
    else
        hd__proto_error_data(c, sub_id, qi->rc, qi->err.message, &qi->err_data);
}

static hd_csub *find_csub(hd_conn *c, const char *sub_id)
{
    for (size_t i = 0; i < c->nsubs; i++)
        if (!strcmp(c->subs[i].id, sub_id)) return &c->subs[i];
    return NULL;
}

/* The instance key: what is asked, and under which rights and identity. */
static char *instance_key(const hd_conn *c, const hd_subspec *spec, const char *norm)
{
    char *json = herald_value_to_json(spec->query ? spec->query : spec->fn_args);
    if (!json) return NULL;
    const herald_value *tid = c->identity.type == HERALD_OBJECT
                                  ? herald_object_get(&c->identity, "tokenIdentifier")
                                  : NULL;
    const char *who = tid && tid->type == HERALD_STRING ? tid->u.s.ptr : "";
    size_t klen = strlen(json) + strlen(who) + (norm ? strlen(norm) : 0) +
                  (spec->journal ? strlen(spec->journal) : 0) + 32;
    char *key = malloc(klen);
    if (key) {
        if (spec->query)
            snprintf(key, klen, "q|%s|%s%s%s", c->admin ? "admin" : "dev", json,
                     spec->journal ? "|j|" : "", spec->journal ? spec->journal : "");
        else
            snprintf(key, klen, "f|%s|%s|%s|%s%s%s", c->admin ? "admin" : "", who, norm, json,
                     spec->journal ? "|j|" : "", spec->journal ? spec->journal : "");
    }
    free(json);
    return key;
}

/*
 * Finds or makes the instance for `spec` as seen by `c`, evaluated (on
 * `snapshot`, or a fresh one when NULL) if it is new.
 */
static int instance_for(hd_server *s, hd_conn *c, const hd_subspec *spec, herald_txn *snapshot,
                        hd_qinst **out, herald_error *err)
{
    char norm[300];
    int rc;
    herald_query *q = NULL;
    if (!ensure_buckets(s)) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (spec->query) {
        if (!c->admin && !s->cfg.dev)
            return herald_fail(err, HERALD_EACCESS,
                               "raw queries need the admin key (or a server in --dev)");
        if ((rc = herald_query_from_value(spec->query, herald_store_schema(s->store), &q, err)))
            return rc;
    } else {
        hd_fn_kind kind;
        bool internal;
        if ((rc = hd__fn_path_normalize(spec->fn_path, norm, sizeof norm, err))) return rc;
        if (!s->fnrt || hd__fn_kind(s->fnrt, norm, &kind, &internal) || (internal && !c->admin))
            return herald_fail(err, HERALD_ENOTFOUND, "no public function `%s`", norm);
        if (kind != HD_FN_QUERY)
            return herald_fail(err, HERALD_EINVAL, "`%s` is a mutation: it cannot be subscribed to",
                               norm);
        if (spec->fn_args && spec->fn_args->type != HERALD_OBJECT)
            return herald_fail(err, HERALD_EVALIDATION, "%s: args must be an object", norm);
    }
    herald_value noargs;
    herald_object_init(&noargs);
    hd_subspec sp = *spec;
    if (!sp.query && !sp.fn_args) sp.fn_args = &noargs;
    char *key = instance_key(c, &sp, spec->query ? NULL : norm);
    if (!key) {
        herald_query_free(q);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    hd_qinst *qi = find_by_key(s, key);
    if (qi) {
        free(key);
        herald_query_free(q);
        *out = qi;
        return 0;
    }
    qi = calloc(1, sizeof *qi);
    if (!qi) {
        free(key);
        herald_query_free(q);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    qi->key = key;
    qi->query = q;
    qi->admin = c->admin;
    bool failed = false;
    if (sp.query) {
        failed = herald_value_copy(&qi->spec, sp.query) != 0 ||
                 (sp.journal && (!(qi->journal = strdup(sp.journal)) ||
                                 herald_query_set_journal(qi->query, sp.journal)));
    } else {
        failed = !(qi->fn_path = strdup(norm)) || herald_value_copy(&qi->fn_args, sp.fn_args) ||
                 herald_value_copy(&qi->identity, &c->identity) ||
                 (sp.journal && !(qi->journal = strdup(sp.journal)));
    }
    if (failed) {
        free_qinst(qi);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    qi->id = ++s->next_qinst;
    herald_read_set_init(&qi->rs);
    qi->hash_next = s->by_key[hash_text(key) % s->nbuckets];
    s->by_key[hash_text(key) % s->nbuckets] = qi;
    qi->id_next = s->by_id[qi->id % s->nbuckets];
    s->by_id[qi->id % s->nbuckets] = qi;
    s->ninst++;
    bool handed;
    evaluate(s, qi, snapshot, NULL, &handed);
    *out = qi;
    return 0;
}

static void drop_if_unused(hd_server *s, hd_qinst *qi)
{
    if (qi->nsubscribers) return;
    hd__rsindex_remove(s->rsindex, qi->id);
    unlink_qinst(s, qi);
    if (qi->pending) {
        /* Its evaluation finds no instance when it comes back. */
        pending_unlink(s, qi);
        wslog_trim(s);
    }
    free_qinst(qi);
}

/* Adds `c` (as `sub_id`, owned by the connection's csub) to the instance's subscribers. */
static int add_subscriber(hd_qinst *qi, hd_conn *c, char *sub_id)
{
    if (qi->nsubscribers == qi->cap) {
        size_t cap = qi->cap ? qi->cap * 2 : 4;
        hd_conn **subs = realloc(qi->subscribers, cap * sizeof *subs);
        if (subs) qi->subscribers = subs;
        char **ids = subs ? realloc(qi->sub_ids, cap * sizeof *ids) : NULL;
        if (ids) qi->sub_ids = ids;
        if (!subs || !ids) return HERALD_ENOMEM;
        qi->cap = cap;
    }
    qi->subscribers[qi->nsubscribers] = c;
    qi->sub_ids[qi->nsubscribers++] = sub_id;
    if (qi->pending) c->npending++;
    return 0;
}

static void remove_subscriber(hd_qinst *qi, hd_conn *c, const char *sub_id)
{
    for (size_t k = 0; k < qi->nsubscribers; k++)
        if (qi->subscribers[k] == c && qi->sub_ids[k] == sub_id) {
            if (qi->pending) c->npending--;
            qi->subscribers[k] = qi->subscribers[qi->nsubscribers - 1];
            qi->sub_ids[k] = qi->sub_ids[qi->nsubscribers - 1];
            qi->nsubscribers--;
            return;
        }
}

int hd__sub_add(hd_server *s, hd_conn *c, const char *sub_id, const hd_subspec *spec,
                herald_error *err)
{
    if (find_csub(c, sub_id))
        return herald_fail(err, HERALD_EINVAL, "subscription `%.64s` already exists", sub_id);
    if (c->nsubs >= s->cfg.max_subs_per_conn)
        return herald_fail(err, HERALD_ELIMIT, "more than %zu subscriptions on one connection",
                           s->cfg.max_subs_per_conn);
    hd_qinst *qi;
    int rc = instance_for(s, c, spec, NULL, &qi, err);
    if (rc) return rc;
    if (c->nsubs == c->capsubs) {
        size_t cap = c->capsubs ? c->capsubs * 2 : 4;
        hd_csub *cs = realloc(c->subs, cap * sizeof *cs);
        if (!cs) goto nomem;
        c->subs = cs;
        c->capsubs = cap;
    }
    char *id = strdup(sub_id);
    if (!id) goto nomem;
    if (add_subscriber(qi, c, id)) {
        free(id);
        goto nomem;
    }
    c->subs[c->nsubs++] =
        (hd_csub){.id = id, .qi = qi, .sent_version = qi->version, .awaiting = qi->pending};
    /* A result at an evaluator thread is sent when it comes back (flush_pending). */
    if (!qi->pending) send_result(c, sub_id, qi);
    return 0;
nomem:
    drop_if_unused(s, qi);
    return herald_fail(err, HERALD_ENOMEM, "out of memory");
}

static void detach(hd_server *s, hd_conn *c, size_t i)
{
    hd_csub *cs = &c->subs[i];
    remove_subscriber(cs->qi, c, cs->id);
    drop_if_unused(s, cs->qi);
    free(cs->id);
    c->subs[i] = c->subs[--c->nsubs];
}

int hd__sub_remove(hd_server *s, hd_conn *c, const char *sub_id)
{
    for (size_t i = 0; i < c->nsubs; i++)
        if (!strcmp(c->subs[i].id, sub_id)) {
            detach(s, c, i);
            return 0;
        }
    return HERALD_ENOTFOUND;
}

void hd__sub_drop_conn(hd_server *s, hd_conn *c)
{
    while (c->nsubs)
        detach(s, c, c->nsubs - 1);
    free(c->subs);
    c->subs = NULL;
    c->capsubs = 0;
}

void hd__sub_free_all(hd_server *s)
{
    for (size_t b = 0; s->by_key && b < s->nbuckets; b++)
        for (hd_qinst *q = s->by_key[b], *n; q; q = n) {
            n = q->hash_next;
            free_qinst(q);
        }
    free(s->by_key);
    free(s->by_id);
    s->by_key = s->by_id = NULL;
    s->pending = NULL;
    wslog_trim(s);
    for (hd_job *j = s->early, *n; j; j = n) {
        n = j->next;
        hd__eval_job_free(j);
    }
    s->early = NULL;
}

typedef struct match_ctx {
    hd_server *s;
    hd_qinst *dirty;
} match_ctx;

static void on_match(void *ctx, uint64_t owner)
{
    match_ctx *m = ctx;
    hd_qinst *qi = find_by_id(m->s, owner);
    if (!qi || qi->dirty) return;
    qi->dirty = true;
    qi->next_dirty = m->dirty;
    m->dirty = qi;
}

/* Adds `change` (a JSON object text) to the connection's frame for this batch. */
static void add_change(hd_conn *c, hd_conn **pending, const char *change, size_t len)
{
    if (c->nchanges == 0) {
        c->next_pending = *pending;
        *pending = c;
    }
    if (c->nchanges++) hd__buf_byte(&c->changes, ',');
    hd__buf_append(&c->changes, change, len);
}

static char *change_text(const char *sub_id, const char *kind, const char *json)
{
    herald_value id;
    if (herald_string(&id, sub_id, strlen(sub_id))) return NULL;
    char *idj = herald_value_to_json(&id);
    herald_value_free(&id);
    if (!idj) return NULL;
    size_t n = strlen(idj) + strlen(json) + 32;
    char *out = malloc(n);
    if (out) snprintf(out, n, "{\"id\":%s,\"%s\":%s}", idj, kind, json);
    free(idj);
    return out;
}

/* Sends {"type":"update","version":V,"changes":[...]} with the changes in `changes`. */
static void send_update(hd_conn *c, uint64_t version, const hd_buf *changes)
{
    char head[96];
    int hl = snprintf(head, sizeof head, "{\"type\":\"update\",\"version\":%llu,\"changes\":[",
                      (unsigned long long)version);
    hd_buf f = HD_BUF_INIT;
    hd__buf_append(&f, head, (size_t)hl);
    hd__buf_append(&f, changes->p, changes->len);
    hd__buf_str(&f, "]}");
    if (!f.failed && !changes->failed) hd__conn_send(c, (char *)f.p, f.len);
    c->srv->updates_sent++;
    hd__buf_free(&f);
}

/* Appends the whole current result of `qi` as subscription `sub_id`'s change. */
static bool add_value_change(hd_buf *changes, size_t *n, const char *sub_id, const hd_qinst *qi)
{
    char *value = herald_value_to_json(&qi->result);
    char *change = value ? change_text(sub_id, "value", value) : NULL;
    if (change) {
        if ((*n)++) hd__buf_byte(changes, ',');
        hd__buf_str(changes, change);
    }
    free(value);
    free(change);
    return change != NULL;
}

void hd__sub_commit(hd_server *s, hd_wbatch *batches, herald_txn *snapshot)
{
    size_t n = 0;
    for (hd_wbatch *b = batches; b; b = b->next)
        n += herald_group_count(b->group);
    s->commits += n;
    hd_conn *pending = NULL;
    uint64_t version = herald_txn_version(snapshot);
    s->seen_version = version;
    if ((n || s->rerun_functions) && s->by_id) {
        const herald_write_set **ws = malloc(n * sizeof *ws);
        match_ctx m = {s, NULL};
        bool ws_failed = false;
        if (ws) {
            size_t k = 0;
            for (hd_wbatch *b = batches; b; b = b->next)
                for (size_t i = 0; i < herald_group_count(b->group); i++)
                    ws[k++] = herald_group_write_set(b->group, i);
            if (hd__rsindex_match(s->rsindex, ws, n, on_match, &m) != 0) ws_failed = true;
            free(ws);
        } else {
            ws_failed = true;
        }
        if (ws_failed || s->rerun_functions) {
            /* Out of memory while matching: re-run everything rather than miss a change.
             * (After a reload every function subscription runs again too; raw ones
             * are re-run with them, which is harmless.) */
            for (size_t k = 0; k < s->nbuckets; k++)
                for (hd_qinst *qi = s->by_key[k]; qi; qi = qi->hash_next)
                    on_match(&m, qi->id);
        }
        for (hd_qinst *qi = m.dirty, *next; qi; qi = next) {
            next = qi->next_dirty;
            qi->dirty = false;
            /* Out at an evaluator thread: its result is checked against this commit. */
            if (qi->pending) continue;
            herald_value old;
            int old_rc = qi->rc;
            bool handed;
            s->metrics.reruns++;
            evaluate(s, qi, snapshot, &old, &handed);
            if (handed) continue;
            char *text = NULL;
            const char *kind = "diff";
            if (qi->rc) {
                text = NULL;
            } else if (old_rc) {
                kind = "value";
                text = herald_value_to_json(&qi->result);
            } else {
                herald_value d;
                herald_error derr;
                if (hd__diff(&old, &qi->result, &d, &derr) == 0) {
                    if (d.type != HERALD_UNDEFINED) text = herald_value_to_json(&d);
                    herald_value_free(&d);
                } else {
                    kind = "value";
                    text = herald_value_to_json(&qi->result);
                }
            }
            herald_value_free(&old);
            if (!text && !qi->rc) continue; /* same result: nothing to send */
            char *whole = NULL;             /* the whole result for sync clients, made once */
            herald_error werr = {0};
            bool whole_made = false;
            /* The same encoded change for every subscriber of this instance. */
            for (size_t k = 0; k < qi->nsubscribers; k++) {
                hd_conn *c = qi->subscribers[k];
                hd_csub *cs = find_csub(c, qi->sub_ids[k]);
                if (!cs) continue;
                if (qi->rc) {
                    send_failure(c, cs->id, qi);
                    continue;
                }
                if (cs->stale || c->npending || c->out_bytes > s->cfg.max_outbound) {
                    /* Behind, or waiting for an evaluation: merge into one whole result,
                     * sent when it drains or the evaluation is back. */
                    cs->stale = true;
                    if (c->behind_since == 0 && !c->npending) c->behind_since = hd__now();
                    continue;
                }
                cs->sent_version = qi->version;
                if (c->sync) {
                    /* Convex's clients take whole values: one per instance, for all of them. */
                    if (!whole_made) {
                        whole_made = true;
                        whole = hd__sync_value_json(&qi->result, &werr);
                    }
                    if (whole) {
                        hd__sync_query(c, cs->id, qi, whole);
                    } else {
                        hd_qinst failed = *qi;
                        failed.rc = werr.code ? werr.code : HERALD_ENOMEM;
                        failed.err = werr;
                        failed.err_data = herald_undefined();
                        hd__sync_query(c, cs->id, &failed, NULL);
                    }
                    continue;
                }
                char *change = change_text(cs->id, kind, text);
                if (change) add_change(c, &pending, change, strlen(change));
                free(change);
            }
            free(whole);
            free(text);
        }
    }
    s->rerun_functions = false;
    /* One frame per connection for everything this commit changed for it. */
    for (hd_conn *c = pending, *next; c; c = next) {
        next = c->next_pending;
        if (c->npending) {
            /* A subscription of it went to an evaluator thread after its changes were
             * made: they merge and go with that one's result (flush_pending). */
            for (size_t i = 0; i < c->nsubs; i++)
                if (c->subs[i].sent_version == version && !c->subs[i].awaiting)
                    c->subs[i].stale = true;
        } else {
            send_update(c, version, &c->changes);
        }
        c->changes.len = 0;
        c->changes.failed = false;
        c->nchanges = 0;
        c->next_pending = NULL;
    }
    hd__admin_commit(s, batches);
    /* Then the acks, in commit order. */
    for (hd_wbatch *b = batches; b; b = b->next)
        for (hd_wreq *r = b->reqs; r; r = r->next)
            hd__proto_answer(s, r);
    /* Evaluations that ran on a snapshot this commit has now reached. */
    hd_job *early = s->early;
    s->early = NULL;
    for (hd_job *j = early, *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        if (!hd__sub_evaluated(s, j)) hd__eval_job_free(j);
    }
    /* Sync clients: their Transitions after the MutationResponses, which must come first. */
    hd__sync_flush_all(s);
}

void hd__sub_catch_up(hd_server *s, hd_conn *c)
{
    if (c->out_bytes <= s->cfg.max_outbound) hd__sub_catch_up_now(s, c);
}

void hd__sub_catch_up_now(hd_server *s, hd_conn *c)
{
    (void)s;
    /* Not while a subscription is at an evaluator thread: flush_pending() does it then. */
    if (c->npending) return;
    /* Every stale subscription's whole result in ONE frame, so the client
     * never holds some of them at a newer commit than others. */
    hd_buf f = HD_BUF_INIT;
    uint64_t version = 0;
    size_t n = 0;
    for (size_t i = 0; i < c->nsubs; i++) {
        hd_csub *cs = &c->subs[i];
        if (!cs->stale) continue;
        hd_qinst *qi = cs->qi;
        cs->stale = false;
        cs->sent_version = qi->version;
        if (qi->version > version) version = qi->version;
        if (qi->rc || c->sync) {
            send_result(c, cs->id, qi);
            continue;
        }
        if (!add_value_change(&f, &n, cs->id, qi)) f.failed = true;
    }
    if (n) send_update(c, version, &f);
    hd__buf_free(&f);
    c->behind_since = 0;
    if (c->sync) hd__sync_flush_all(c->srv);
}

void hd__sub_reauth(hd_server *s, hd_conn *c)
{
    herald_txn *snapshot = NULL;
    herald_error err = {0};
    if (c->nsubs == 0) return;
    if (herald_read_begin(s->store, &snapshot, &err)) {
        /* Without a snapshot nothing can be re-run: end them rather than keep old rights. */
        while (c->nsubs) {
            hd_qinst failed = {.rc = err.code, .err = err};
            send_failure(c, c->subs[c->nsubs - 1].id, &failed);
            detach(s, c, c->nsubs - 1);
        }
        return;
    }
    hd_buf f = HD_BUF_INIT;
    size_t n = 0;
    for (size_t i = 0; i < c->nsubs;) {
        hd_csub *cs = &c->subs[i];
        hd_qinst *old = cs->qi, *qi = NULL;
        /* A live page keeps its end under the new identity too. */
        hd_subspec spec = {.query = old->query ? &old->spec : NULL,
                           .fn_path = old->fn_path,
                           .fn_args = &old->fn_args,
                           .journal = old->journal};
        int rc = instance_for(s, c, &spec, snapshot, &qi, &err);
        if (!rc && qi != old && add_subscriber(qi, c, cs->id)) {
            drop_if_unused(s, qi);
            rc = herald_fail(&err, HERALD_ENOMEM, "out of memory");
        }
        if (rc) {
            /* Not allowed (or not possible) any more: the subscription ends here. */
            hd_qinst failed = {.rc = rc, .err = err};
            send_failure(c, cs->id, &failed);
            detach(s, c, i);
            continue;
        }
        if (qi != old) {
            remove_subscriber(old, c, cs->id);
            drop_if_unused(s, old);
            cs->qi = qi;
        }
        if (qi->pending) {
            /* Its value goes with the evaluation when it is back. */
            if (!cs->awaiting) cs->stale = true;
            i++;
            continue;
        }
        cs->stale = false;
        cs->sent_version = qi->version;
        if (qi->rc || c->sync)
            send_result(c, cs->id, qi);
        else if (!add_value_change(&f, &n, cs->id, qi))
            f.failed = true;
        i++;
    }
    if (n) send_update(c, herald_txn_version(snapshot), &f);
    hd__buf_free(&f);
    herald_txn_end(snapshot);
    if (c->sync) hd__sync_flush_all(s);
}

int hd__sub_send_ack(hd_conn *c, const char *text, size_t len)
{
    hd_server *s = c->srv;
    if (c->dead || c->closing) return 0;
    size_t held = 0;
    for (hd_frame *f = c->held; f; f = f->next)
        held += f->len;
    if (held + len > s->cfg.max_queued) {
        hd__conn_close(c, "too far behind: too many answers wait for its subscriptions");
        return HERALD_ELIMIT;
    }
    hd_frame *f = malloc(sizeof *f + len);
    if (!f) return HERALD_ENOMEM;
    f->next = NULL;
    f->len = len;
    memcpy(f->data, text, len);
    if (c->held_tail)
        c->held_tail->next = f;
    else
        c->held = f;
    c->held_tail = f;
    return 0;
}

/*
 * The connection's last pending subscription is back: first the merged
 * updates of the others with it (one frame), then the first results that
 * waited, then the acks that waited, in order.
 */
static void flush_pending(hd_server *s, hd_conn *c)
{
    hd__sub_catch_up_now(s, c);
    for (size_t i = 0; i < c->nsubs; i++) {
        hd_csub *cs = &c->subs[i];
        if (!cs->awaiting) continue;
        cs->awaiting = false;
        cs->stale = false;
        cs->sent_version = cs->qi->version;
        send_result(c, cs->id, cs->qi);
    }
    hd_frame *f = c->held;
    c->held = c->held_tail = NULL;
    for (hd_frame *n; f; f = n) {
        n = f->next;
        hd__conn_send(c, (const char *)f->data, f->len);
        free(f);
    }
}

bool hd__sub_evaluated(hd_server *s, hd_job *j)
{
    hd_qinst *qi = find_by_id(s, j->qinst_id);
    if (!qi || !qi->pending) return false; /* nobody watches it any more */
    if (j->version > s->seen_version) {
        /* From a snapshot the loop has not processed yet: checked once it has. */
        j->next = s->early;
        s->early = j;
        return true;
    }
    if (qi->pending_generation != s->fn_generation || written_since(s, j->version, &j->rs)) {
        /* Changed meanwhile (or the functions were reloaded): once more, on a newer snapshot. */
        if (hand_over(s, qi) == 0) return false;
    }
    /* Valid from its snapshot to now: the instance's result at the loop's version. */
    herald_value old = qi->result;
    int old_rc = qi->rc;
    qi->rc = j->rc;
    qi->err = j->err;
    qi->result = j->rc ? herald_undefined() : j->result;
    j->result = herald_undefined();
    herald_value_free(&qi->err_data);
    qi->err_data = j->err_data;
    j->err_data = herald_undefined();
    herald_read_set_free(&qi->rs);
    qi->rs = j->rs;
    herald_read_set_init(&j->rs);
    qi->version = s->seen_version;
    set_journal(s, qi, j->journal_out);
    j->journal_out = NULL;
    if (hd__rsindex_add(s->rsindex, qi->id, &qi->rs)) {
        herald_value_free(&qi->result);
        qi->result = herald_undefined();
        qi->rc = herald_fail(&qi->err, HERALD_ENOMEM, "out of memory: subscription stopped");
    }
    bool same = false;
    if (!old_rc && !qi->rc) {
        herald_value d;
        herald_error derr;
        if (hd__diff(&old, &qi->result, &d, &derr) == 0) {
            same = d.type == HERALD_UNDEFINED;
            herald_value_free(&d);
        }
    }
    herald_value_free(&old);
    pending_unlink(s, qi);
    wslog_trim(s);
    for (size_t k = 0; k < qi->nsubscribers; k++) {
        hd_conn *c = qi->subscribers[k];
        hd_csub *cs = find_csub(c, qi->sub_ids[k]);
        c->npending--;
        if (cs && !cs->awaiting && !same) cs->stale = true;
    }
    for (size_t k = 0; k < qi->nsubscribers; k++) {
        hd_conn *c = qi->subscribers[k];
        if (!c->npending) flush_pending(s, c);
    }
    hd__sync_flush_all(s);
    return false;
}
