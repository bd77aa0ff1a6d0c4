/*
 * The admin console's side of the protocol (docs/protocol.md, "The admin
 * console's messages"): tables with counts, the schema, the functions,
 * server stats, and the live tail of commits; plus the bookkeeping behind
 * the stats (commits per second, commit-to-push latency).
 *
 * Everything here runs on the event loop and answers only connections
 * that presented the admin key (proto.c checks). It must never put work
 * on the commit path when nobody follows the tail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "jwt.h"
#include "server.h"

/* ---- building values (allocation failures make the whole answer fail) ---- */

typedef struct vb {
    bool failed;
} vb;

static void set(vb *b, herald_value *obj, const char *key, herald_value v)
{
    if (herald_object_set(obj, key, strlen(key), v)) b->failed = true;
}

static void set_str(vb *b, herald_value *obj, const char *key, const char *s)
{
    herald_value v;
    if (herald_string(&v, s, strlen(s))) {
        b->failed = true;
        return;
    }
    set(b, obj, key, v);
}

static void set_num(vb *b, herald_value *obj, const char *key, double n)
{
    set(b, obj, key, herald_float64(n));
}

static void push(vb *b, herald_value *arr, herald_value v)
{
    if (herald_array_push(arr, v)) b->failed = true;
}

static herald_value strings(vb *b, char *const *s, size_t n, const char *last)
{
    herald_value arr, v;
    herald_array_init(&arr);
    for (size_t i = 0; i < n; i++) {
        if (herald_string(&v, s[i], strlen(s[i])))
            b->failed = true;
        else
            push(b, &arr, v);
    }
    if (last) {
        if (herald_string(&v, last, strlen(last)))
            b->failed = true;
        else
            push(b, &arr, v);
    }
    return arr;
}

static herald_value index_entry(vb *b, const char *name, herald_value fields)
{
    herald_value ix;
    herald_object_init(&ix);
    set_str(b, &ix, "name", name);
    set(b, &ix, "fields", fields);
    return ix;
}

/* ---- the ops ---- */

static int op_tables(hd_server *s, herald_value *out, herald_error *err)
{
    const herald_schema *schema = herald_store_schema(s->store);
    herald_txn *t;
    int rc = herald_read_begin(s->store, &t, err);
    if (rc) return rc;
    vb b = {false};
    herald_array_init(out);
    for (size_t i = 0; i < schema->ntables && !rc; i++) {
        const herald_table_def *td = &schema->tables[i];
        uint64_t count = 0;
        if ((rc = herald_table_count(t, td->name, &count, err))) break;
        herald_value table, indexes, search;
        herald_object_init(&table);
        herald_array_init(&indexes);
        herald_array_init(&search);
        char *id_field = "_id";
        push(&b, &indexes, index_entry(&b, "by_id", strings(&b, &id_field, 1, NULL)));
        push(&b, &indexes,
             index_entry(&b, "by_creation_time", strings(&b, NULL, 0, "_creationTime")));
        for (size_t k = 0; k < td->nindexes; k++)
            push(&b, &indexes,
                 index_entry(
                     &b, td->indexes[k].name,
                     strings(&b, td->indexes[k].fields, td->indexes[k].nfields, "_creationTime")));
        for (size_t k = 0; k < td->nsearch_indexes; k++) {
            herald_value si;
            herald_object_init(&si);
            set_str(&b, &si, "name", td->search_indexes[k].name);
            set_str(&b, &si, "searchField", td->search_indexes[k].search_field);
            set(&b, &si, "filterFields",
                strings(&b, td->search_indexes[k].filter_fields,
                        td->search_indexes[k].nfilter_fields, NULL));
            push(&b, &search, si);
        }
        set_str(&b, &table, "name", td->name);
        set_num(&b, &table, "count", (double)count);
        set(&b, &table, "indexes", indexes);
        set(&b, &table, "searchIndexes", search);
        push(&b, out, table);
    }
    herald_txn_end(t);
    if (!rc && b.failed) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (rc) herald_value_free(out);
    return rc;
}

static int op_schema(hd_server *s, herald_value *out, herald_error *err)
{
    char *text = herald_schema_to_json(herald_store_schema(s->store));
    if (!text) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    int rc = herald_value_from_json(text, strlen(text), out, err);
    free(text);
    return rc;
}

static int op_functions(hd_server *s, herald_value *out, herald_error *err)
{
    vb b = {false};
    herald_array_init(out);
    for (size_t i = 0; s->fnrt && i < hd__fnrt_count(s->fnrt); i++) {
        const char *path = hd__fnrt_path(s->fnrt, i);
        hd_fn_kind kind = HD_FN_QUERY;
        bool internal = false;
        hd__fn_kind(s->fnrt, path, &kind, &internal);
        herald_value fn;
        herald_object_init(&fn);
        set_str(&b, &fn, "path", path);
        set_str(&b, &fn, "kind", hd__fn_kind_name(kind));
        set(&b, &fn, "internal", herald_bool(internal));
        push(&b, out, fn);
    }
    if (b.failed) {
        herald_value_free(out);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    return 0;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* {"samples", "p50Ms", "p99Ms"} of a ring of 1,000 latencies in milliseconds. */
static void ring_stats(vb *b, const float *ring, size_t n, herald_value *out)
{
    float sorted[1000];
    if (n > sizeof sorted / sizeof sorted[0]) n = sizeof sorted / sizeof sorted[0];
    memcpy(sorted, ring, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_float);
    herald_object_init(out);
    set_num(b, out, "samples", (double)n);
    set(b, out, "p50Ms", n ? herald_float64(sorted[n / 2]) : herald_null());
    set(b, out, "p99Ms", n ? herald_float64(sorted[(n * 99) / 100]) : herald_null());
}

static int op_stats(hd_server *s, herald_value *out, herald_error *err)
{
    vb b = {false};
    double now = hd__now();
    size_t conns = 0, subs = 0;
    for (hd_conn *c = s->conns; c; c = c->next)
        if (c->websocket) {
            conns++;
            subs += c->nsubs;
        }
    /* Commits per second over the last 10 whole seconds. */
    uint64_t sec = (uint64_t)now, recent = 0;
    for (size_t i = 0; i < sizeof s->per_second / sizeof s->per_second[0]; i++)
        if (s->per_second[i].second < sec && s->per_second[i].second + 10 >= sec)
            recent += s->per_second[i].commits;
    herald_value latency, durable, map;
    ring_stats(&b, s->latency_ms, s->nlatency, &latency);
    ring_stats(&b, s->durable_ms, s->ndurable, &durable);
    herald_object_init(&map);
    size_t size = 0, used = 0, max = 0;
    herald_store_map_info(s->store, &size, &used, &max);
    set_num(&b, &map, "sizeBytes", (double)size);
    set_num(&b, &map, "usedBytes", (double)used);
    set_num(&b, &map, "maxBytes", (double)max);
    herald_object_init(out);
    set_num(&b, out, "version", (double)herald_store_version(s->store));
    set_num(&b, out, "uptimeSeconds", now - s->started_at);
    set_num(&b, out, "connections", (double)conns);
    set_num(&b, out, "subscriptions", (double)subs);
    set_num(&b, out, "queryInstances", (double)s->ninst);
    set_num(&b, out, "commits", (double)s->commits);
    set_num(&b, out, "commitsPerSecond", (double)recent / 10.0);
    set(&b, out, "commitToPush", latency);
    set(&b, out, "submitToDurable", durable);
    set(&b, out, "map", map);
    /* What clients hold of the server's memory, against --max-memory. */
    herald_value mem;
    herald_object_init(&mem);
    set_num(&b, &mem, "readingBytes", (double)s->mem_in);
    set_num(&b, &mem, "queuedBytes", (double)s->mem_out);
    set_num(&b, &mem, "limitBytes", (double)s->cfg.max_memory);
    set(&b, out, "clientMemory", mem);
    set_num(&b, out, "sockets", s->admit ? (double)hd__admit_count(s->admit) : 0);
    set_num(&b, out, "refusedConnections", (double)s->refused);
    set_num(&b, out, "functions", s->fnrt ? (double)hd__fnrt_count(s->fnrt) : 0);
    set_num(&b, out, "authProviders", (double)hd__auth_provider_count(s->auth));
    if (b.failed) {
        herald_value_free(out);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    return 0;
}

void hd__admin_message(hd_server *s, hd_conn *c, const char *id, const char *op)
{
    static const struct {
        const char *name;
        int (*run)(hd_server *, herald_value *, herald_error *);
    } ops[] = {
        {"tables", op_tables},
        {"schema", op_schema},
        {"functions", op_functions},
        {"stats", op_stats},
    };
    herald_error err = {0};
    for (size_t i = 0; op && i < sizeof ops / sizeof ops[0]; i++) {
        if (strcmp(op, ops[i].name)) continue;
        herald_value value;
        int rc = ops[i].run(s, &value, &err);
        if (rc) {
            hd__proto_error(c, id, rc, err.message);
        } else {
            hd__proto_send(c, "result", id, herald_store_version(s->store), &value);
            herald_value_free(&value);
        }
        return;
    }
    hd__proto_error(c, id, HERALD_EINVAL, "`op` must be one of tables, schema, functions, stats");
}

void hd__admin_tail(hd_server *s, hd_conn *c, const char *id)
{
    char *copy = strdup(id);
    if (!copy) {
        hd__proto_error(c, id, HERALD_ENOMEM, "out of memory");
        return;
    }
    if (!c->tail_id) s->ntails++;
    free(c->tail_id);
    c->tail_id = copy;
    hd__proto_send(c, "ack", id, herald_store_version(s->store), NULL);
}

void hd__admin_untail(hd_server *s, hd_conn *c)
{
    if (!c->tail_id) return;
    free(c->tail_id);
    c->tail_id = NULL;
    s->ntails--;
}

static const char *const op_names[] = {"insert", "update", "delete"};

static void add_change(void *ctx, const char *table, const char *id, herald_change_op op)
{
    hd_buf *b = ctx;
    char line[200];
    /* Table names are identifiers and ids base32: nothing to escape. */
    snprintf(line, sizeof line, "%s{\"table\":\"%s\",\"op\":\"%s\",\"doc\":\"%s\"}",
             b->len && b->p[b->len - 1] != '[' ? "," : "", table, op_names[op], id);
    hd__buf_str(b, line);
}

/* Sends one commit frame to every connection following the tail. */
static void send_tail(hd_server *s, const herald_write_set *ws)
{
    hd_buf changes = HD_BUF_INIT;
    hd__buf_byte(&changes, '[');
    herald_write_set_changes(s->store, ws, add_change, &changes);
    hd__buf_byte(&changes, ']');
    for (hd_conn *c = s->conns; c && !changes.failed; c = c->next) {
        if (!c->tail_id || c->closing) continue;
        herald_value idv;
        char *idj = NULL;
        if (herald_string(&idv, c->tail_id, strlen(c->tail_id)) == 0) {
            idj = herald_value_to_json(&idv);
            herald_value_free(&idv);
        }
        if (!idj) continue;
        char head[96];
        snprintf(head, sizeof head,
                 ",\"version\":%llu,\"changes\":", (unsigned long long)ws->version);
        hd_buf f = HD_BUF_INIT;
        hd__buf_str(&f, "{\"type\":\"commit\",\"id\":");
        hd__buf_str(&f, idj);
        hd__buf_str(&f, head);
        hd__buf_append(&f, changes.p, changes.len);
        hd__buf_byte(&f, '}');
        if (!f.failed) hd__conn_send(c, (char *)f.p, f.len);
        hd__buf_free(&f);
        free(idj);
    }
    hd__buf_free(&changes);
}

void hd__admin_commit(hd_server *s, hd_wbatch *batches)
{
    double now = hd__now();
    uint64_t sec = (uint64_t)now;
    for (hd_wbatch *b = batches; b; b = b->next) {
        size_t n = herald_group_count(b->group);
        size_t slot = sec % (sizeof s->per_second / sizeof s->per_second[0]);
        if (s->per_second[slot].second != sec) {
            s->per_second[slot].second = sec;
            s->per_second[slot].commits = 0;
        }
        s->per_second[slot].commits += n;
        /* A mutation's time at the writer, from its queue to a durable commit. */
        for (hd_wreq *r = b->reqs; r && b->committed_at > 0; r = r->next) {
            s->durable_ms[s->durable_next] = (float)((b->committed_at - r->submitted_at) * 1000.0);
            s->durable_next =
                (s->durable_next + 1) % (sizeof s->durable_ms / sizeof s->durable_ms[0]);
            if (s->ndurable < sizeof s->durable_ms / sizeof s->durable_ms[0]) s->ndurable++;
        }
        /* One latency sample per commit of the group: they were pushed together. */
        float ms = b->committed_at > 0 ? (float)((now - b->committed_at) * 1000.0) : 0;
        if (n) s->metrics.groups++;
        hd__metrics_latency(s, b->committed_at > 0 ? now - b->committed_at : 0, n);
        for (size_t i = 0; i < n; i++) {
            s->latency_ms[s->latency_next] = ms;
            s->latency_next =
                (s->latency_next + 1) % (sizeof s->latency_ms / sizeof s->latency_ms[0]);
            if (s->nlatency < sizeof s->latency_ms / sizeof s->latency_ms[0]) s->nlatency++;
            if (s->ntails) send_tail(s, herald_group_write_set(b->group, i));
        }
    }
}
