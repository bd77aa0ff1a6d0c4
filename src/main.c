/*
 * The `herald` command line: schema tools, one-shot queries, import,
 * export and the consistency check on a data folder.
 *
 * Every failure prints one line "herald: <ErrorCode>: <message>" on stderr
 * and exits 1 (2 for usage errors); nothing here may print secrets.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adminkey.h"
#include "blobcheck.h"
#include "codegen.h"
#include "console.h"
#include "dump.h"
#include "server.h"
#include "herald/query.h"
#include "herald/store.h"

#define DEFAULT_DATA "herald-data"

static const char usage[] =
    "usage: herald [--data DIR] [--app DIR] [--no-sync] COMMAND [ARGS]\n"
    "\n"
    "  --data DIR     data folder (default ./" DEFAULT_DATA ")\n"
    "  --app DIR      app folder with schema.ts or schema.json; its schema is\n"
    "                 applied to the data folder before a command that writes\n"
    "                 (schema apply, import, serve); get, query, export, check and\n"
    "                 schema show read the folder as it is, also beside a server\n"
    "  --no-sync      do not fsync commits (faster, not durable; for tests)\n"
    "\n"
    "commands:\n"
    "  schema check [FILE]   parse a schema file (default: the app's) and report problems\n"
    "  schema show [FILE]    print a schema as canonical JSON (default: the stored one)\n"
    "  schema apply          apply the app's schema to the data folder\n"
    "  query JSON            run a query (docs/queries.md) and print its result\n"
    "  get ID                print one document\n"
    "  import DIR            import an export folder (ids kept)\n"
    "  import --table T FILE import a JSON-lines file into table T\n"
    "  export DIR            write every table as JSON lines into DIR, stored files in DIR/files\n"
    "  check                 verify that indexes match documents and stored files their rows\n"
    "  serve [--port N] [--host ADDR] [--dev] [--static DIR] [--allow-origin LIST]\n"
    "        [--max-outbound BYTES] [--max-behind SECONDS] [--max-message BYTES]\n"
    "        [--max-queued BYTES] [--max-memory MIB] [--max-connections N]\n"
    "        [--max-per-address N] [--idle-timeout SECONDS] [--request-timeout SECONDS]\n"
    "        [--fn-instructions N] [--fn-memory MIB] [--evaluators N]\n"
    "        [--idempotency-retention SECONDS]  (a key answers retries for 24 h)\n"
    "        [--public-url URL] [--max-file-size MIB] [--max-storage MIB] [--max-uploads N]\n"
    "                        files (ctx.storage): URLs start with URL (default\n"
    "                        http://localhost:PORT); 100 MiB a file, no total but the\n"
    "                        disk, 16 uploads at once\n"
    "        [--allow-fetch LIST] [--action-timeout SECONDS] [--fetch-timeout SECONDS]\n"
    "        [--max-actions N] [--action-threads N] [--scheduled-retention SECONDS]\n"
    "                        actions: fetch() refuses loopback, private and link-local\n"
    "                        addresses but those of LIST (addresses, CIDR ranges); an\n"
    "                        action runs 600 s at most, a fetch 30 s; 64 actions run at\n"
    "                        once on 2 threads, more wait; finished scheduled runs are\n"
    "                        kept 7 days\n"
    "                        run the live server (docs/protocol.md, \"Limits\"): port 3210\n"
    "                        on every address (127.0.0.1 with --dev unless --host); static\n"
    "                        files from DIR, else the app's public/, else ./web-demo;\n"
    "                        browsers only from the server's own origin and LIST\n"
    "                        (comma-separated, * for any); 64 KiB queued per client\n"
    "                        before its updates merge, 16 MiB at most, closed after 30 s\n"
    "                        without progress; 1 GiB for all connection buffers;\n"
    "                        10,000 connections, 1,000 per address; silent WebSockets\n"
    "                        pinged, closed after 60 s; a request or message must\n"
    "                        arrive within 30 s; messages up to 1 MiB + 64 KiB;\n"
    "                        functions may run 50 million instructions and use 64 MiB;\n"
    "                        a query taking over 2 ms goes to one of N evaluator\n"
    "                        threads (default: one per processor)\n"
    "  functions             load the app's functions/*.lua and list them\n"
    "  codegen --out DIR     write DIR/api.js, api.d.ts and dataModel.d.ts (Convex's\n"
    "                        convex/_generated) from the app's schema and the validators\n"
    "                        of its functions, for a TypeScript frontend (docs/codegen.md)\n"
    "  console [URL] [--key KEY | --key-file FILE] [--json]\n"
    "                        the admin console in a terminal, on a running server\n"
    "                        (default ws://localhost:3210; docs/console.md)\n"
    "  admin-key             make a new admin key for the data folder (the old one stops\n"
    "                        working; a running server takes it on SIGHUP)\n"
    "  version               print the version\n";

static int fail(const herald_error *err, int rc)
{
    fprintf(stderr, "herald: %s: %s\n", herald_errcode_name(rc),
            err && err->message[0] ? err->message : herald_strerror(rc));
    return 1;
}

static int usage_error(const char *what)
{
    fprintf(stderr, "herald: %s\n\n%s", what, usage);
    return 2;
}

/* The app's schema file: schema.json if present, else schema.ts. */
static int app_schema_path(const char *app, char *out, size_t n)
{
    static const char *const names[] = {"schema.json", "schema.ts"};
    for (size_t i = 0; i < 2; i++) {
        struct stat st;
        int len = snprintf(out, n, "%s/%s", app, names[i]);
        if (len > 0 && (size_t)len < n && stat(out, &st) == 0) return 0;
    }
    return -1;
}

static int load_app_schema(const char *app, herald_schema **out, herald_error *err)
{
    char path[4096];
    if (app_schema_path(app, path, sizeof path) != 0)
        return herald_fail(err, HERALD_ENOTFOUND, "%s has no schema.json or schema.ts", app);
    return herald_schema_load_file(path, out, err);
}

static int print_json(const herald_value *v)
{
    char *json = herald_value_to_json(v);
    if (!json) return HERALD_ENOMEM;
    puts(json);
    free(json);
    return 0;
}

static void print_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
}

typedef struct options {
    const char *data;
    const char *app;
    bool no_sync;
    const char *command; /* named in the data folder's lock while it writes */
} options;

/* Commands that write hold the data folder's writer lock: one at a time. */
static int open_store(const options *o, herald_store **s, herald_error *err)
{
    char owner[64];
    snprintf(owner, sizeof owner, "herald %s", o->command);
    herald_store_options so = {.no_sync = o->no_sync, .owner = owner};
    int rc = herald_store_open(o->data, &so, s, err);
    if (rc || !o->app) return rc;
    herald_schema *schema;
    if ((rc = load_app_schema(o->app, &schema, err)) ||
        (rc = herald_store_set_schema(*s, schema, err))) {
        herald_store_close(*s);
        *s = NULL;
    }
    return rc;
}

/* Read-only commands never create, change or lock the folder: they run beside a server. */
static int open_reader(const options *o, herald_store **s, herald_error *err)
{
    herald_store_options so = {.read_only = true};
    return herald_store_open(o->data, &so, s, err);
}

static int cmd_schema(const options *o, int argc, char **argv, herald_error *err)
{
    if (argc < 1) return usage_error("schema: expected check, show or apply");
    const char *sub = argv[0];
    const char *file = argc > 1 ? argv[1] : NULL;
    herald_schema *schema = NULL;
    int rc;
    if (!strcmp(sub, "check") || (!strcmp(sub, "show") && (file || o->app))) {
        char path[4096];
        if (!file && !o->app) return usage_error("schema check: give a FILE or --app DIR");
        if (!file && app_schema_path(o->app, path, sizeof path) != 0)
            return fail(err, herald_fail(err, HERALD_ENOTFOUND, "%s has no schema", o->app));
        if ((rc = herald_schema_load_file(file ? file : path, &schema, err))) return fail(err, rc);
        if (!strcmp(sub, "check")) {
            printf("%s: %zu table%s, ok\n", file ? file : path, schema->ntables,
                   schema->ntables == 1 ? "" : "s");
        } else {
            char *json = herald_schema_to_json(schema);
            if (json) puts(json);
            free(json);
        }
        herald_schema_free(schema);
        return 0;
    }
    if (!strcmp(sub, "show") || !strcmp(sub, "apply")) {
        if (!strcmp(sub, "apply") && !o->app) return usage_error("schema apply needs --app DIR");
        herald_store *s;
        rc = !strcmp(sub, "apply") ? open_store(o, &s, err) : open_reader(o, &s, err);
        if (rc) return fail(err, rc);
        const herald_schema *cur = herald_store_schema(s);
        if (!strcmp(sub, "show")) {
            char *json = cur ? herald_schema_to_json(cur) : NULL;
            puts(json ? json : "null");
            free(json);
        } else {
            printf("schema applied: %zu tables\n", cur->ntables);
        }
        herald_store_close(s);
        return 0;
    }
    return usage_error("schema: expected check, show or apply");
}

static int cmd_query(const options *o, const char *text, herald_error *err)
{
    herald_store *s;
    int rc = open_reader(o, &s, err);
    if (rc) return fail(err, rc);
    herald_query *q = NULL;
    herald_txn *t = NULL;
    herald_value result = herald_undefined();
    if (!(rc = herald_query_parse(text, strlen(text), herald_store_schema(s), &q, err)) &&
        !(rc = herald_read_begin(s, &t, err)) &&
        !(rc = herald_query_run(q, t, NULL, &result, NULL, err)))
        rc = print_json(&result);
    herald_value_free(&result);
    herald_txn_end(t);
    herald_query_free(q);
    herald_store_close(s);
    return rc ? fail(err, rc) : 0;
}

static int cmd_get(const options *o, const char *id, herald_error *err)
{
    herald_store *s;
    int rc = open_reader(o, &s, err);
    if (rc) return fail(err, rc);
    herald_txn *t = NULL;
    herald_value doc = herald_undefined();
    if (!(rc = herald_read_begin(s, &t, err)) && !(rc = herald_get(t, NULL, id, &doc, NULL, err)))
        print_json(&doc);
    herald_value_free(&doc);
    herald_txn_end(t);
    herald_store_close(s);
    return rc ? fail(err, rc) : 0;
}

static int cmd_import(const options *o, int argc, char **argv, herald_error *err)
{
    const char *table = NULL, *src = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--table") && i + 1 < argc)
            table = argv[++i];
        else if (!src)
            src = argv[i];
        else
            return usage_error("import: too many arguments");
    }
    if (!src) return usage_error("import: expected a folder or a file");
    herald_store *s;
    int rc = open_store(o, &s, err);
    if (rc) return fail(err, rc);
    uint64_t n = 0;
    rc = table ? hd__import_file(s, src, table, &n, err) : hd__import_dir(s, src, &n, err);
    if (!rc) printf("imported %llu documents\n", (unsigned long long)n);
    herald_store_close(s);
    return rc ? fail(err, rc) : 0;
}

static int cmd_export(const options *o, const char *dir, herald_error *err)
{
    herald_store *s;
    int rc = open_reader(o, &s, err);
    if (rc) return fail(err, rc);
    rc = hd__export(s, dir, err);
    if (!rc) printf("exported to %s\n", dir);
    herald_store_close(s);
    return rc ? fail(err, rc) : 0;
}

static int cmd_check(const options *o, herald_error *err)
{
    herald_store *s;
    int rc = open_reader(o, &s, err);
    if (rc) return fail(err, rc);
    rc = hd__check(s, print_line, NULL, err); /* the store, then its files */
    if (!rc) printf("ok: version %llu\n", (unsigned long long)herald_store_version(s));
    herald_txn *t = NULL;
    uint64_t records = 0;
    if (!rc && !(rc = herald_read_begin(s, &t, err)) && !(rc = herald_idem_count(t, &records, err)))
        printf("idempotency records: %llu\n", (unsigned long long)records);
    herald_txn_end(t);
    herald_store_close(s);
    return rc ? fail(err, rc) : 0;
}

/* Loads the app's functions against its schema, as serve would, and lists them. */
static int cmd_functions(const options *o, herald_error *err)
{
    if (!o->app) return usage_error("functions: needs --app DIR");
    herald_schema *schema = NULL;
    hd_fnbundle *b = NULL;
    hd_fnrt *rt = NULL;
    int rc = load_app_schema(o->app, &schema, err);
    if (!rc) rc = hd__fnbundle_read(o->app, &b, err);
    if (!rc) rc = hd__fnrt_new(b, schema, NULL, &rt, err);
    for (size_t i = 0; !rc && i < hd__fnrt_count(rt); i++) {
        hd_fn_kind kind;
        bool internal;
        const char *path = hd__fnrt_path(rt, i);
        hd__fn_kind(rt, path, &kind, &internal);
        printf("%s\t%s%s\n", path, internal ? "internal " : "", hd__fn_kind_name(kind));
    }
    hd__fnrt_free(rt);
    hd__fnbundle_unref(b);
    herald_schema_free(schema);
    return rc ? fail(err, rc) : 0;
}

/* Loads the app as `functions` does and writes the frontend's types (docs/codegen.md). */
static int cmd_codegen(const options *o, int argc, char **argv, herald_error *err)
{
    const char *app = o->app, *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--app") && i + 1 < argc)
            app = argv[++i];
        else
            return usage_error("codegen: expected --out DIR");
    }
    if (!app) return usage_error("codegen: needs --app DIR");
    if (!out) return usage_error("codegen: needs --out DIR (for example convex/_generated)");
    herald_schema *schema = NULL;
    hd_fnbundle *b = NULL;
    hd_fnrt *rt = NULL;
    int rc = load_app_schema(app, &schema, err);
    if (!rc) rc = hd__fnbundle_read(app, &b, err);
    if (!rc) rc = hd__fnrt_new(b, schema, NULL, &rt, err);
    if (!rc) rc = hd__codegen_write(schema, rt, out, err);
    if (!rc)
        printf("wrote %s/api.js, api.d.ts and dataModel.d.ts (%zu tables, %zu functions)\n", out,
               schema->ntables, hd__fnrt_count(rt));
    hd__fnrt_free(rt);
    hd__fnbundle_unref(b);
    herald_schema_free(schema);
    return rc ? fail(err, rc) : 0;
}

/*
 * A new admin key only replaces one file, which a server reads at its start
 * and on SIGHUP, never the database: it may be made while the server runs
 * (that is how a key is changed without a restart), and the server is named.
 */
static void writer_note(const char *data)
{
    long pid;
    char owner[128];
    if (herald_store_writer(data, &pid, owner, sizeof owner, NULL) != 1) return;
    if (strcmp(owner, "herald serve") == 0)
        fprintf(stderr,
                "herald: herald serve (pid %ld) runs on %s: it takes the new key on SIGHUP "
                "(kill -HUP %ld); until then the old key works\n",
                pid, data, pid);
}

static int cmd_admin_key(const options *o, herald_error *err)
{
    char path[4200];
    unsigned char hash[32];
    struct stat st;
    if (stat(o->data, &st) != 0 && mkdir(o->data, 0700) != 0) {
        herald_fail(err, HERALD_EIO, "cannot create %s", o->data);
        return fail(err, HERALD_EIO);
    }
    int rc = hd__adminkey_new(o->data, path, sizeof path, hash, err);
    if (rc) return fail(err, rc);
    /* The key stays in its file (mode 0600): scripts read it there, no terminal shows it. */
    printf("admin key written to %s (mode 0600)\n", path);
    writer_note(o->data);
    return 0;
}

/* Reads a whole decimal number between lo and hi. */
static bool positive(const char *text, double lo, double hi, double *out)
{
    char *end;
    *out = strtod(text, &end);
    return end != text && !*end && *out >= lo && *out <= hi && *out == (double)(long long)*out;
}

static int cmd_serve(const options *o, int argc, char **argv, herald_error *err)
{
    hd_server_config cfg = {
        .data_dir = o->data, .app_dir = o->app, .port = 3210, .no_sync = o->no_sync};
    double n;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            char *end;
            long port = strtol(argv[++i], &end, 10);
            if (*end || port < 0 || port > 65535) return usage_error("serve: bad --port");
            cfg.port = (int)port;
        } else if (!strcmp(argv[i], "--max-outbound") && i + 1 < argc) {
            cfg.max_outbound = strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--max-message") && i + 1 < argc) {
            cfg.max_message = strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--max-behind") && i + 1 < argc) {
            cfg.max_behind_seconds = strtod(argv[++i], NULL);
        } else if ((!strcmp(argv[i], "--host") || !strcmp(argv[i], "--bind")) && i + 1 < argc) {
            cfg.host = argv[++i];
        } else if (!strcmp(argv[i], "--allow-origin") && i + 1 < argc) {
            cfg.allow_origins = argv[++i];
        } else if (!strcmp(argv[i], "--max-connections") && i + 1 < argc) {
            if (!positive(argv[++i], 1, 10000000, &n))
                return usage_error("serve: bad --max-connections");
            cfg.max_connections = (size_t)n;
        } else if (!strcmp(argv[i], "--max-per-address") && i + 1 < argc) {
            if (!positive(argv[++i], 1, 10000000, &n))
                return usage_error("serve: bad --max-per-address");
            cfg.max_per_address = (size_t)n;
        } else if (!strcmp(argv[i], "--idle-timeout") && i + 1 < argc) {
            if (!positive(argv[++i], 2, 86400, &n))
                return usage_error("serve: bad --idle-timeout (2 to 86400)");
            cfg.idle_seconds = n;
        } else if (!strcmp(argv[i], "--request-timeout") && i + 1 < argc) {
            if (!positive(argv[++i], 1, 3600, &n))
                return usage_error("serve: bad --request-timeout (1 to 3600)");
            cfg.request_seconds = n;
        } else if (!strcmp(argv[i], "--max-queued") && i + 1 < argc) {
            if (!positive(argv[++i], 65536, 1e12, &n))
                return usage_error("serve: bad --max-queued (at least 65536)");
            cfg.max_queued = (size_t)n;
        } else if (!strcmp(argv[i], "--max-memory") && i + 1 < argc) {
            if (!positive(argv[++i], 16, 1048576, &n))
                return usage_error("serve: bad --max-memory (16 MiB or more)");
            cfg.max_memory = (size_t)n << 20;
        } else if (!strcmp(argv[i], "--idempotency-retention") && i + 1 < argc) {
            char *end;
            const char *text = argv[++i];
            unsigned long long secs = strtoull(text, &end, 10);
            if (*end || !*text || *text == '-' || secs < 1 || secs > 3660ull * 86400)
                return usage_error("serve: bad --idempotency-retention (1 s to 10 years)");
            cfg.idempotency_retention = (double)secs;
        } else if (!strcmp(argv[i], "--public-url") && i + 1 < argc) {
            cfg.public_url = argv[++i];
            if (strncmp(cfg.public_url, "http://", 7) && strncmp(cfg.public_url, "https://", 8))
                return usage_error("serve: --public-url must start with http:// or https://");
            if (strlen(cfg.public_url) > 200) return usage_error("serve: --public-url is too long");
        } else if ((!strcmp(argv[i], "--max-file-size") || !strcmp(argv[i], "--max-storage")) &&
                   i + 1 < argc) {
            bool file = !strcmp(argv[i], "--max-file-size");
            char *end;
            const char *text = argv[++i];
            unsigned long long mib = strtoull(text, &end, 10);
            if (*end || !*text || *text == '-' || mib < 1 || mib > (1ull << 30))
                return usage_error(file ? "serve: bad --max-file-size (MiB, 1 or more)"
                                        : "serve: bad --max-storage (MiB, 1 or more)");
            *(file ? &cfg.max_file_size : &cfg.max_storage) = (uint64_t)mib << 20;
        } else if (!strcmp(argv[i], "--max-uploads") && i + 1 < argc) {
            char *end;
            const char *text = argv[++i];
            unsigned long long n = strtoull(text, &end, 10);
            if (*end || !*text || *text == '-' || n < 1 || n > 10000)
                return usage_error("serve: bad --max-uploads (1 to 10,000)");
            cfg.max_uploads = (size_t)n;
        } else if (!strcmp(argv[i], "--scheduled-retention") && i + 1 < argc) {
            char *end;
            const char *text = argv[++i];
            unsigned long long secs = strtoull(text, &end, 10);
            if (*end || !*text || *text == '-' || secs < 1 || secs > 3660ull * 86400)
                return usage_error("serve: bad --scheduled-retention (1 s to 10 years)");
            cfg.scheduled_retention = (double)secs;
        } else if (!strcmp(argv[i], "--allow-fetch") && i + 1 < argc) {
            cfg.actions.fetch.allow = argv[++i];
        } else if ((!strcmp(argv[i], "--action-timeout") || !strcmp(argv[i], "--fetch-timeout") ||
                    !strcmp(argv[i], "--max-actions") || !strcmp(argv[i], "--action-threads")) &&
                   i + 1 < argc) {
            /* Actions (docs/functions.md, "Actions"): each a whole number in its range. */
            static const struct {
                const char *flag;
                unsigned long long lo, hi;
                const char *message;
            } ranges[] = {
                {"--action-timeout", 1, 86400, "serve: bad --action-timeout (1 to 86,400 s)"},
                {"--fetch-timeout", 1, 3600, "serve: bad --fetch-timeout (1 to 3,600 s)"},
                {"--max-actions", 1, 10000, "serve: bad --max-actions (1 to 10,000)"},
                {"--action-threads", 1, 64, "serve: bad --action-threads (1 to 64)"},
            };
            size_t k = 0;
            while (strcmp(ranges[k].flag, argv[i]))
                k++;
            char *end;
            const char *text = argv[++i];
            unsigned long long n = strtoull(text, &end, 10);
            if (*end || !*text || *text == '-' || n < ranges[k].lo || n > ranges[k].hi)
                return usage_error(ranges[k].message);
            if (k == 0) cfg.actions.seconds = (double)n;
            if (k == 1) cfg.actions.fetch.timeout_seconds = (double)n;
            if (k == 2) cfg.actions.max_running = (size_t)n;
            if (k == 3) cfg.actions.threads = (size_t)n;
        } else if (!strcmp(argv[i], "--dev")) {
            cfg.dev = cfg.fn_limits.dev = true;
        } else if (!strcmp(argv[i], "--static") && i + 1 < argc) {
            cfg.static_dir = argv[++i];
        } else if (!strcmp(argv[i], "--fn-instructions") && i + 1 < argc) {
            char *end;
            unsigned long long n = strtoull(argv[++i], &end, 10);
            if (*end || n < 1000)
                return usage_error("serve: bad --fn-instructions (at least 1000)");
            cfg.fn_limits.instructions = n;
        } else if (!strcmp(argv[i], "--fn-memory") && i + 1 < argc) {
            char *end;
            unsigned long mib = strtoul(argv[++i], &end, 10);
            if (*end || mib < 1 || mib > 1024)
                return usage_error("serve: bad --fn-memory (1 to 1024 MiB)");
            cfg.fn_limits.memory = (size_t)mib << 20;
        } else if (!strcmp(argv[i], "--evaluators") && i + 1 < argc) {
            char *end;
            unsigned long n = strtoul(argv[++i], &end, 10);
            if (*end || n < 1 || n > 64) return usage_error("serve: bad --evaluators (1 to 64)");
            cfg.evaluators = n;
        } else {
            return usage_error("serve: unknown option");
        }
    }
    char public_dir[4096];
    struct stat st;
    if (!cfg.static_dir && o->app) {
        snprintf(public_dir, sizeof public_dir, "%s/public", o->app);
        if (stat(public_dir, &st) == 0 && S_ISDIR(st.st_mode)) cfg.static_dir = public_dir;
    }
    /* From a checkout, the web demo is the page to show. */
    if (!cfg.static_dir && stat("web-demo/index.html", &st) == 0) cfg.static_dir = "web-demo";
    if (cfg.dev && !cfg.host) cfg.host = "127.0.0.1";
    if (o->app) {
        /* Apply the app's schema before serving it. */
        herald_store *s;
        int rc = open_store(o, &s, err);
        if (rc) return fail(err, rc);
        herald_store_close(s);
    }
    return hd__server_run(&cfg);
}

int main(int argc, char **argv)
{
    options o = {.data = DEFAULT_DATA};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc)
            o.data = argv[++i];
        else if (!strcmp(argv[i], "--app") && i + 1 < argc)
            o.app = argv[++i];
        else if (!strcmp(argv[i], "--no-sync"))
            o.no_sync = true;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        } else
            return usage_error("unknown option");
    }
    if (i >= argc) return usage_error("no command");
    const char *cmd = argv[i++];
    o.command = cmd;
    int rest = argc - i;
    char **args = argv + i;
    herald_error err = {0};
    if (!strcmp(cmd, "schema")) return cmd_schema(&o, rest, args, &err);
    if (!strcmp(cmd, "query") && rest == 1) return cmd_query(&o, args[0], &err);
    if (!strcmp(cmd, "get") && rest == 1) return cmd_get(&o, args[0], &err);
    if (!strcmp(cmd, "import")) return cmd_import(&o, rest, args, &err);
    if (!strcmp(cmd, "export") && rest == 1) return cmd_export(&o, args[0], &err);
    if (!strcmp(cmd, "check") && rest == 0) return cmd_check(&o, &err);
    if (!strcmp(cmd, "serve")) return cmd_serve(&o, rest, args, &err);
    if (!strcmp(cmd, "functions")) return cmd_functions(&o, &err);
    if (!strcmp(cmd, "codegen")) return cmd_codegen(&o, rest, args, &err);
    if (!strcmp(cmd, "admin-key")) return cmd_admin_key(&o, &err);
    if (!strcmp(cmd, "console")) return hd__console_main(rest, args);
    if (!strcmp(cmd, "version")) {
        puts("herald 0.1.0");
        return 0;
    }
    if (!strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    return usage_error("unknown command or wrong number of arguments");
}
