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

/* Runs the instance's query on `snapshot` (NULL: a fresh one); the previous result goes to *old. */
static int evaluate(hd_server *s, hd_qinst *qi, herald_txn *snapshot, herald_value *old)
{
    herald_txn *t = snapshot;
    herald_read_set rs;
    herald_value result;
    herald_error err = {0};
    herald_read_set_init(&rs);
    herald_value err_data = herald_undefined();
    int rc = t ? 0 : herald_read_begin(s->store, &t, &err);
    if (rc == 0) {
        if (qi->query) {
            rc = herald_query_run(qi->query, t, NULL, &result, &rs, &err);
        } else if (s->fnrt) {
            hd_fncall call = {.path = qi->fn_path,
                              .args = &qi->fn_args,
                              .identity = &qi->identity,
                              .admin = qi->admin,
                              .kind = HD_FN_QUERY,
                              .txn = t,
                              .rs = &rs};
            rc = hd__fn_call(s->fnrt, &call, &result, &err_data, &err);
        } else {
            rc = herald_fail(&err, HERALD_ENOTFOUND, "this app has no functions");
        }
        qi->version = herald_txn_version(t);
        if (!snapshot) herald_txn_end(t);
    }
    herald_value_free(&qi->err_data);
    qi->err_data = err_data;
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
    hd__buf_byte(&b, '}');
    if (!b.failed && value && idj) hd__conn_send(c, (char *)b.p, b.len);
    free(value);
    free(idj);
    hd__buf_free(&b);
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
    size_t klen = strlen(json) + strlen(who) + (norm ? strlen(norm) : 0) + 32;
    char *key = malloc(klen);
    if (key) {
        if (spec->query)
            snprintf(key, klen, "q|%s|%s", c->admin ? "admin" : "dev", json);
        else
            snprintf(key, klen, "f|%s|%s|%s|%s", c->admin ? "admin" : "", who, norm, json);
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
        failed = herald_value_copy(&qi->spec, sp.query) != 0;
    } else {
        failed = !(qi->fn_path = strdup(norm)) || herald_value_copy(&qi->fn_args, sp.fn_args) ||
                 herald_value_copy(&qi->identity, &c->identity);
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
    evaluate(s, qi, snapshot, NULL);
    *out = qi;
    return 0;
}

static void drop_if_unused(hd_server *s, hd_qinst *qi)
{
    if (qi->nsubscribers) return;
    hd__rsindex_remove(s->rsindex, qi->id);
    unlink_qinst(s, qi);
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
    return 0;
}

static void remove_subscriber(hd_qinst *qi, hd_conn *c, const char *sub_id)
{
    for (size_t k = 0; k < qi->nsubscribers; k++)
        if (qi->subscribers[k] == c && qi->sub_ids[k] == sub_id) {
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
    c->subs[c->nsubs++] = (hd_csub){.id = id, .qi = qi, .sent_version = qi->version};
    send_result(c, sub_id, qi);
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
            herald_value old;
            int old_rc = qi->rc;
            evaluate(s, qi, snapshot, &old);
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
            /* The same encoded change for every subscriber of this instance. */
            for (size_t k = 0; k < qi->nsubscribers; k++) {
                hd_conn *c = qi->subscribers[k];
                hd_csub *cs = find_csub(c, qi->sub_ids[k]);
                if (!cs) continue;
                if (qi->rc) {
                    hd__proto_error_data(c, cs->id, qi->rc, qi->err.message, &qi->err_data);
                    continue;
                }
                if (cs->stale || c->out_bytes > s->cfg.max_outbound) {
                    /* Behind: merge into one whole result sent when it drains. */
                    cs->stale = true;
                    if (c->behind_since == 0) c->behind_since = hd__now();
                    continue;
                }
                char *change = change_text(cs->id, kind, text);
                if (change) add_change(c, &pending, change, strlen(change));
                free(change);
                cs->sent_version = qi->version;
            }
            free(text);
        }
    }
    s->rerun_functions = false;
    /* One frame per connection for everything this commit changed for it. */
    for (hd_conn *c = pending, *next; c; c = next) {
        next = c->next_pending;
        send_update(c, version, &c->changes);
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
}

void hd__sub_catch_up(hd_server *s, hd_conn *c)
{
    if (c->out_bytes <= s->cfg.max_outbound) hd__sub_catch_up_now(s, c);
}

void hd__sub_catch_up_now(hd_server *s, hd_conn *c)
{
    (void)s;
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
        if (qi->rc) {
            hd__proto_error_data(c, cs->id, qi->rc, qi->err.message, &qi->err_data);
            continue;
        }
        if (!add_value_change(&f, &n, cs->id, qi)) f.failed = true;
    }
    if (n) send_update(c, version, &f);
    hd__buf_free(&f);
    c->behind_since = 0;
}

void hd__sub_reauth(hd_server *s, hd_conn *c)
{
    herald_txn *snapshot = NULL;
    herald_error err = {0};
    if (c->nsubs == 0) return;
    if (herald_read_begin(s->store, &snapshot, &err)) {
        /* Without a snapshot nothing can be re-run: end them rather than keep old rights. */
        while (c->nsubs) {
            hd__proto_error(c, c->subs[c->nsubs - 1].id, err.code, err.message);
            detach(s, c, c->nsubs - 1);
        }
        return;
    }
    hd_buf f = HD_BUF_INIT;
    size_t n = 0;
    for (size_t i = 0; i < c->nsubs;) {
        hd_csub *cs = &c->subs[i];
        hd_qinst *old = cs->qi, *qi = NULL;
        hd_subspec spec = {.query = old->query ? &old->spec : NULL,
                           .fn_path = old->fn_path,
                           .fn_args = &old->fn_args};
        int rc = instance_for(s, c, &spec, snapshot, &qi, &err);
        if (!rc && qi != old && add_subscriber(qi, c, cs->id)) {
            drop_if_unused(s, qi);
            rc = herald_fail(&err, HERALD_ENOMEM, "out of memory");
        }
        if (rc) {
            /* Not allowed (or not possible) any more: the subscription ends here. */
            hd__proto_error(c, cs->id, rc, err.message);
            detach(s, c, i);
            continue;
        }
        if (qi != old) {
            remove_subscriber(old, c, cs->id);
            drop_if_unused(s, old);
            cs->qi = qi;
        }
        cs->stale = false;
        cs->sent_version = qi->version;
        if (qi->rc)
            hd__proto_error_data(c, cs->id, qi->rc, qi->err.message, &qi->err_data);
        else if (!add_value_change(&f, &n, cs->id, qi))
            f.failed = true;
        i++;
    }
    if (n) send_update(c, herald_txn_version(snapshot), &f);
    hd__buf_free(&f);
    herald_txn_end(snapshot);
}
