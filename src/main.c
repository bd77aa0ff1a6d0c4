/*
 * The `herald` command line: schema tools, one-shot queries, import,
 * export and the consistency check on a data folder.
 *
 * Every failure prints one line "herald: <ErrorCode>: <message>" on stderr
 * and exits 1 (2 for usage errors); nothing here may print secrets.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adminkey.h"
#include "backup.h"
#include "repl.h"
#include "blobcheck.h"
#include "codegen.h"
#include "console.h"
#include "dump.h"
#include "options.h"
#include "schema_priv.h"
#include "server.h"
#include "herald/query.h"
#include "herald/store.h"

#define DEFAULT_DATA "herald-data"

#ifndef HERALD_VERSION
#define HERALD_VERSION "0.1.0"
#endif

static const char usage[] =
    "usage: herald [--data DIR] [--app DIR] [--no-sync] COMMAND [ARGS]\n"
    "       herald --version | --help\n"
    "\n"
    "  --data DIR     data folder (default ./" DEFAULT_DATA ", or $HERALD_DATA)\n"
    "  --app DIR      app folder with schema.ts or schema.json (or $HERALD_APP); its\n"
    "                 schema is applied to the data folder before a command that writes\n"
    "                 (schema apply, import, serve); get, query, export, check and\n"
    "                 schema show read the folder as it is, also beside a server\n"
    "  --no-sync      do not fsync commits (faster, not durable; for tests)\n"
    "\n"
    "commands:\n"
    "  serve [OPTIONS]       run the live server; `herald serve --help` lists its options,\n"
    "                        each also read from HERALD_<NAME> or a --config FILE\n"
    "                        (docs/operations.md, \"Configuration\")\n"
    "  schema check [FILE]   parse a schema file (default: the app's) and report problems\n"
    "  schema show [FILE]    print a schema as canonical JSON (default: the stored one)\n"
    "  schema apply [--url URL [--key KEY]]\n"
    "                        apply the app's schema to the data folder; with --url, to\n"
    "                        the server running on it, live (admin key: --key,\n"
    "                        HERALD_ADMIN_KEY or DATA/admin.key)\n"
    "  query JSON            run a query (docs/queries.md) and print its result\n"
    "  get ID                print one document\n"
    "  import DIR            import an export folder (ids kept)\n"
    "  import --table T FILE import a JSON-lines file into table T\n"
    "  export DIR            write every table as JSON lines into DIR, stored files in DIR/files\n"
    "  check                 verify that indexes match documents and stored files their rows\n"
    "  backup DEST           copy the data folder into new folder DEST, also while a\n"
    "                        server writes (docs/operations.md, \"Backups\")\n"
    "  restore BACKUP        copy backup BACKUP into the --data folder (new or empty)\n"
    "  functions             load the app's functions/*.lua and list them\n"
    "  codegen --out DIR     write DIR/api.js, api.d.ts and dataModel.d.ts (Convex's\n"
    "                        convex/_generated) from the app's schema and the validators\n"
    "                        of its functions, for a TypeScript frontend (docs/codegen.md)\n"
    "  console [URL] [--key KEY | --key-file FILE] [--json] [--ca FILE]\n"
    "                        the admin console in a terminal, on a running server\n"
    "                        (default ws://localhost:3210; wss:// with TLS, the server's\n"
    "                        certificate checked against the system's CAs and FILE's;\n"
    "                        docs/console.md)\n"
    "  admin-key             make a new admin key for the data folder (the old one stops\n"
    "                        working; a running server takes it on SIGHUP)\n"
    "  version               print the version (also --version, -V)\n"
    "  help [serve]          print this, or serve's options\n";

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
    bool data_given, app_given; /* on the command line: they win over serve's other sources */
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
    if ((rc = hd__schema_load_app(o->app, &schema, err)) ||
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

/*
 * `schema apply --url URL [--key KEY]`: the server at URL, which holds the
 * data folder, reads its app's schema again and applies it (the admin
 * `reload` message, sent by the console). The admin key comes from --key,
 * HERALD_ADMIN_KEY or DATA/admin.key, in that order.
 */
static int schema_apply_live(const options *o, int argc, char **argv)
{
    const char *url = NULL, *key = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--url") && i + 1 < argc)
            url = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            key = argv[++i];
        else
            return usage_error("schema apply: expected --url URL [--key KEY]");
    }
    if (!url) return usage_error("schema apply: --key needs --url URL");
    char key_file[4200];
    const char *env_key = getenv("HERALD_ADMIN_KEY");
    snprintf(key_file, sizeof key_file, "%s/" HD_ADMINKEY_FILE, o->data);
    char *args[4] = {key ? "--key" : "--key-file", key ? (char *)key : key_file, (char *)url};
    int nargs = 3;
    if (!key && env_key && env_key[0]) {
        args[0] = (char *)url; /* the console takes HERALD_ADMIN_KEY itself */
        nargs = 1;
    }
    /* The console reads its commands from stdin when it is not a terminal: one. */
    int fds[2];
    if (pipe(fds) != 0 || write(fds[1], "reload\n", 7) != 7 || close(fds[1]) != 0 ||
        dup2(fds[0], STDIN_FILENO) < 0) {
        fprintf(stderr, "herald: schema apply: cannot talk to the console: %s\n", strerror(errno));
        return 1;
    }
    close(fds[0]);
    /* It prints the outcome ("schema applied" or "unchanged"), or the refusal. */
    return hd__console_main(nargs, args);
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
        if (!file && hd__schema_app_path(o->app, path, sizeof path) != 0)
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
    if (!strcmp(sub, "apply") && argc > 1) return schema_apply_live(o, argc - 1, argv + 1);
    if (!strcmp(sub, "show") || !strcmp(sub, "apply")) {
        if (!strcmp(sub, "apply") && !o->app) return usage_error("schema apply needs --app DIR");
        herald_store *s;
        rc = !strcmp(sub, "apply") ? open_store(o, &s, err) : open_reader(o, &s, err);
        if (rc == HERALD_EBUSY && !strcmp(sub, "apply"))
            fprintf(stderr,
                    "herald: a server holds %s: `schema apply --url URL` applies the "
                    "schema through it\n",
                    o->data);
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

/* A backup of `from` (open read-only: a server may run on it) into `to`; restore is the same copy.
 */
static int cmd_backup(const char *from, const char *to, const char *done, herald_error *err)
{
    herald_store *s;
    herald_store_options so = {.read_only = true};
    int rc = herald_store_open(from, &so, &s, err);
    if (rc) return fail(err, rc);
    hd_backup_info info;
    rc = hd__backup(s, from, to, &info, err);
    herald_store_close(s);
    if (rc) return fail(err, rc);
    printf("%s %s: version %llu, %llu files, %.1f MiB", done, to, (unsigned long long)info.version,
           (unsigned long long)info.files, (double)info.bytes / (1 << 20));
    /* More snapshots: files were deleted while they were being copied. */
    printf(info.attempts > 1 ? " (%u snapshots)\n" : "\n", info.attempts);
    return 0;
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
    int rc = hd__schema_load_app(o->app, &schema, err);
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
    int rc = hd__schema_load_app(app, &schema, err);
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

/*
 * `herald serve`'s options: one entry each drives the command line, the
 * environment (HERALD_<NAME>), the --config file and --help
 * (options.h). An option is added by adding its entry here, and a field to
 * hd_server_config; docs/operations.md's table is checked against --help.
 */
typedef struct serve_settings {
    hd_server_config cfg;
    const char *config; /* --config FILE */
} serve_settings;

#define SERVE(member) HD_OPT_FIELD(serve_settings, member)
#define MIB           ((uint64_t)1 << 20)
#define TEN_YEARS     (3660.0 * 86400)

static bool http_url(const char *url)
{
    return (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8)) && strlen(url) <= 200;
}

static const hd_option serve_opts[] = {
    {"config", .kind = HD_OPT_STRING, .metavar = "FILE", SERVE(config), .def = "none",
     .help = "read options from FILE, one \"name = value\" a line (# starts a comment); the "
             "environment and the command line override it"},
    {"data", .kind = HD_OPT_STRING, .metavar = "DIR", SERVE(cfg.data_dir), .def = "./" DEFAULT_DATA,
     .help = "the data folder (as `herald --data DIR serve`)"},
    {"app", .kind = HD_OPT_STRING, .metavar = "DIR", SERVE(cfg.app_dir), .def = "none",
     .help = "the app folder (schema.ts or schema.json, functions/, public/), as `herald --app "
             "DIR serve`; its schema is applied to the data folder before serving"},
    {"port", .kind = HD_OPT_NUMBER, .metavar = "N", .lo = 0, .hi = 65535, .range = "0 to 65535",
     SERVE(cfg.port), .def = "3210", .help = "the port of HTTP and WebSocket"},
    {"host", "bind", HD_OPT_STRING, "ADDR", SERVE(cfg.host),
     .def = "every address; 127.0.0.1 with --dev",
     .help = "the address to listen on (an IPv4 or IPv6 address of this machine)"},
    {"dev", .kind = HD_OPT_FLAG, SERVE(cfg.dev), .def = "off",
     .help = "development: ANY client may run raw queries and mutations without a key, and "
             "errors show where they were raised; listens on 127.0.0.1 unless --host is given"},
    {"static", .kind = HD_OPT_STRING, .metavar = "DIR", SERVE(cfg.static_dir),
     .def = "the app's public/, else ./web-demo", .help = "serve the files of DIR at /"},
    {"allow-origin", .kind = HD_OPT_LIST, .metavar = "LIST", SERVE(cfg.allow_origins),
     .def = "the server's own origin",
     .help = "other origins browsers may call from (comma-separated, * for any)"},
    {"tls-cert", .kind = HD_OPT_STRING, .metavar = "FILE", SERVE(cfg.tls_cert), .def = "none",
     .help = "serve HTTPS and wss:// on the port, all of it, with the certificate chain of FILE "
             "(PEM: the server's certificate, then intermediates); needs --tls-key; TLS 1.2 and "
             "1.3; SIGHUP reloads both files without dropping connections (docs/operations.md, "
             "\"TLS\")"},
    {"tls-key", .kind = HD_OPT_STRING, .metavar = "FILE", SERVE(cfg.tls_key), .def = "none",
     .help = "the private key of --tls-cert (PEM, unencrypted)"},
    {"public-url", .kind = HD_OPT_STRING, .metavar = "URL", .check = http_url,
     .range = "an http:// or https:// URL of 200 characters at most", SERVE(cfg.public_url),
     .def = "http://localhost:PORT (https:// with --tls-cert)",
     .help = "where clients reach the server: the URLs of stored files start with it"},
    {"max-connections", .kind = HD_OPT_NUMBER, .metavar = "N", .lo = 1, .hi = 1e7,
     .range = "1 to 10,000,000", SERVE(cfg.max_connections),
     .def = "10000 (the descriptor limit minus 64 when lower)",
     .help = "connections open at once; the next is answered 503"},
    {"max-per-address", .kind = HD_OPT_NUMBER, .metavar = "N", .lo = 1, .hi = 1e7,
     .range = "1 to 10,000,000", SERVE(cfg.max_per_address), .def = "1000",
     .help = "connections open at once from one client address"},
    {"idle-timeout", .kind = HD_OPT_SECONDS, .metavar = "SECONDS", .lo = 2, .hi = 86400,
     .range = "2 to 86400", SERVE(cfg.idle_seconds), .def = "60",
     .help = "a silent WebSocket is pinged after half of this and closed after all of it"},
    {"request-timeout", .kind = HD_OPT_SECONDS, .metavar = "SECONDS", .lo = 1, .hi = 3600,
     .range = "1 to 3600", SERVE(cfg.request_seconds), .def = "30",
     .help = "an HTTP request or a WebSocket message must arrive within this from its first "
             "byte (408, or the WebSocket closed)"},
    {"max-message", .kind = HD_OPT_SIZE, .metavar = "BYTES", .lo = 1024, .hi = 1 << 30,
     .range = "1024 to 1073741824", SERVE(cfg.max_message), .def = "1114112 (1 MiB + 64 KiB)",
     .help = "the largest WebSocket message or HTTP request body (413 beyond)"},
    {"max-outbound", .kind = HD_OPT_SIZE, .metavar = "BYTES", .lo = 1024, .hi = 1 << 30,
     .range = "1024 to 1073741824", SERVE(cfg.max_outbound), .def = "65536 (64 KiB)",
     .help = "bytes queued to one client before its updates merge (it skips intermediate "
             "states)"},
    {"max-behind", .kind = HD_OPT_SECONDS, .metavar = "SECONDS", .lo = 0.1, .hi = 86400,
     .range = "0.1 to 86400", SERVE(cfg.max_behind_seconds), .def = "30",
     .help = "a client whose updates stay merged this long, or that stops reading an HTTP "
             "answer this long, is disconnected"},
    {"max-queued", .kind = HD_OPT_SIZE, .metavar = "BYTES", .lo = 65536, .hi = 1e12,
     .range = "at least 65536", SERVE(cfg.max_queued), .def = "16777216 (16 MiB)",
     .help = "bytes queued to one client at most"},
    {"max-memory", .kind = HD_OPT_SIZE, .metavar = "MIB", .lo = 16, .hi = 1048576, .scale = MIB,
     .range = "16 MiB or more", SERVE(cfg.max_memory), .def = "1024 (1 GiB)",
     .help = "memory for all clients' messages and queued frames together; a message beyond "
             "it is answered Busy"},
    {"fn-instructions", .kind = HD_OPT_NUMBER, .metavar = "N", .lo = 1000, .hi = 1e15,
     .range = "at least 1000", SERVE(cfg.fn_limits.instructions), .def = "50000000",
     .help = "Lua instructions one function call may run"},
    {"fn-memory", .kind = HD_OPT_SIZE, .metavar = "MIB", .lo = 1, .hi = 1024, .scale = MIB,
     .range = "1 to 1024 MiB", SERVE(cfg.fn_limits.memory), .def = "64",
     .help = "memory one function call may use"},
    {"evaluators", .kind = HD_OPT_NUMBER, .metavar = "N", .lo = 1, .hi = 64, .range = "1 to 64",
     SERVE(cfg.evaluators), .def = "one per processor, at most 8",
     .help = "threads that run a query taking over 2 ms, off the event loop"},
    {"idempotency-retention", .kind = HD_OPT_SECONDS, .metavar = "SECONDS", .lo = 1,
     .hi = TEN_YEARS, .range = "1 s to 10 years", SERVE(cfg.idempotency_retention),
     .def = "86400 (24 h)", .help = "how long an idempotency key answers retries"},
    {"max-file-size", .kind = HD_OPT_SIZE, .metavar = "MIB", .lo = 1, .hi = 1 << 30, .scale = MIB,
     .range = "MiB, 1 or more", SERVE(cfg.max_file_size), .def = "100",
     .help = "the largest file ctx.storage takes"},
    {"max-storage", .kind = HD_OPT_SIZE, .metavar = "MIB", .lo = 1, .hi = 1 << 30, .scale = MIB,
     .range = "MiB, 1 or more", SERVE(cfg.max_storage), .def = "no limit but the disk",
     .help = "all stored files together (507 beyond)"},
    {"max-uploads", .kind = HD_OPT_NUMBER, .metavar = "N", .lo = 1, .hi = 10000,
     .range = "1 to 10,000", SERVE(cfg.max_uploads), .def = "16",
     .help = "uploads being received at once"},
    {"allow-fetch", .kind = HD_OPT_LIST, .metavar = "LIST", SERVE(cfg.actions.fetch.allow),
     .def = "none",
     .help = "addresses and CIDR ranges (comma-separated) fetch() may reach although they are "
             "loopback, private or link-local, which it refuses otherwise"},
    {"action-timeout", .kind = HD_OPT_SECONDS, .metavar = "SECONDS", .lo = 1, .hi = 86400,
     .range = "1 to 86,400 s", SERVE(cfg.actions.seconds), .def = "600",
     .help = "how long one action may run"},
    {"fetch-timeout", .kind = HD_OPT_SECONDS, .metavar = "SECONDS", .lo = 1, .hi = 3600,
     .range = "1 to 3,600 s", SERVE(cfg.actions.fetch.timeout_seconds), .def = "30",
     .help = "how long one fetch() may take, body included"},
    {"max-actions", .kind = HD_OPT_NUMBER, .metavar = "N", .lo = 1, .hi = 10000,
     .range = "1 to 10,000", SERVE(cfg.actions.max_running), .def = "64",
     .help = "actions running at once; more wait"},
    {"action-threads", .kind = HD_OPT_NUMBER, .metavar = "N", .lo = 1, .hi = 64, .range = "1 to 64",
     SERVE(cfg.actions.threads), .def = "2", .help = "threads that run actions"},
    {"scheduled-retention", .kind = HD_OPT_SECONDS, .metavar = "SECONDS", .lo = 1, .hi = TEN_YEARS,
     .range = "1 s to 10 years", SERVE(cfg.scheduled_retention), .def = "604800 (7 days)",
     .help = "how long a finished scheduled run is kept"},
    {"metrics-bind", .kind = HD_OPT_STRING, .metavar = "[ADDR:]PORT", SERVE(cfg.metrics_bind),
     .def = "none: /metrics on the main port, with the admin key",
     .help = "a second listener that serves /metrics, /healthz and /version without the admin "
             "key (127.0.0.1 when only a port is given)"},
    {"writer-stall", .kind = HD_OPT_SECONDS, .metavar = "SECONDS", .lo = 1, .hi = 86400,
     .range = "1 to 86,400 s", SERVE(cfg.writer_stall), .def = "30",
     .help = "/healthz answers 503 once a mutation has waited this long for the writer"},
    {"log-format", .kind = HD_OPT_STRING, .metavar = "FORMAT", .choices = "text|json",
     .range = "text or json", SERVE(cfg.log_format), .def = "text",
     .help = "json: each log line one JSON object (time, level, event, fields), an access line "
             "per HTTP request and WebSocket"},
    {"replicate", .kind = HD_OPT_LIST, .metavar = "URLS", SERVE(cfg.repl.urls), .secret = true,
     .def = "none: a single node",
     .help = "replicate through NATS JetStream: the nats:// URLs of its servers (comma-separated); "
             "one node is the primary, the others replicas that serve reads and subscriptions "
             "and forward writes (docs/replication.md); a URL may carry user:password@, "
             "never shown in messages"},
    {"replicate-ca", .kind = HD_OPT_STRING, .metavar = "FILE", SERVE(cfg.repl.ca),
     .def = "the system's CAs",
     .help = "with --replicate: TLS to the NATS servers (also for tls:// URLs), their "
             "certificates checked against the CA certificates of FILE (PEM)"},
    {"role", .kind = HD_OPT_STRING, .metavar = "ROLE", .choices = "auto|primary|replica",
     .range = "auto, primary or replica", SERVE(cfg.repl.role), .def = "auto",
     .help = "with --replicate: auto takes the primary's lease when it is free, replica never "
             "does, primary refuses to start while another node holds it"},
    {"node", .kind = HD_OPT_STRING, .metavar = "NAME", SERVE(cfg.repl.node), .def = "HOSTNAME-PORT",
     .help = "with --replicate: this node's name in its cluster"},
    {"cluster", .kind = HD_OPT_STRING, .metavar = "NAME", SERVE(cfg.repl.cluster), .def = "herald",
     .help = "with --replicate: the cluster's name (1 to 32 letters, digits, - or _), which "
             "names its stream, lease bucket and snapshots in JetStream"},
    {"lease", .kind = HD_OPT_SECONDS, .metavar = "SECONDS", .lo = 0.5, .hi = 600,
     .range = "0.5 to 600 s", SERVE(cfg.repl.lease), .def = "5",
     .help = "with --replicate: how long the primary's lease lives unrenewed; a replica takes "
             "over once it lapsed"},
    {"stream-retain", .kind = HD_OPT_NUMBER, .metavar = "N", .lo = 10, .hi = 1e12,
     .range = "10 to 10^12", SERVE(cfg.repl.retain), .def = "1000000",
     .help = "with --replicate: commit groups the stream keeps (set when the cluster's stream is "
             "made); a replica further behind starts again from a snapshot"},
    {"snapshot-every", .kind = HD_OPT_NUMBER, .metavar = "N", .lo = 1, .hi = 1e12,
     .range = "1 to 10^12", SERVE(cfg.repl.snapshot_every), .def = "10000",
     .help = "with --replicate: the primary publishes a snapshot to JetStream every N commit "
             "groups (and when it becomes primary without a usable one)"},
};

static const hd_options serve_table = {serve_opts, sizeof serve_opts / sizeof *serve_opts,
                                       "HERALD_", "serve"};

static void serve_help(FILE *out)
{
    fputs("usage: herald [--data DIR] [--app DIR] serve [OPTIONS]\n"
          "\n"
          "Runs the live server (docs/protocol.md; docs/operations.md for production).\n"
          "Every option is also read from its environment variable and from the file\n"
          "given by --config (or HERALD_CONFIG), a line \"name = value\" each, the name\n"
          "without dashes (\"max-connections = 5000\"). The command line wins over the\n"
          "environment, the environment over the file.\n"
          "\n"
          "options:\n",
          out);
    hd__options_help(&serve_table, out);
}

/* A bad option of serve's: exit 2, with the list of options after an unknown one. */
static int serve_usage_error(const herald_error *err)
{
    if (err->code != HERALD_EINVAL && err->code != HERALD_ENOTFOUND) return fail(err, err->code);
    fprintf(stderr, "herald: %s\n", err->message);
    if (err->code == HERALD_ENOTFOUND) {
        fputs("the options of herald serve are:\n", stderr);
        hd__options_list(&serve_table, stderr);
    }
    fputs("(herald serve --help describes them)\n", stderr);
    return 2;
}

/*
 * Settings from the lowest precedence up: defaults, the --config file, the
 * environment, the command line (the global --data and --app, then serve's
 * own). The command line is read once first on its own, for --help and the
 * file it names.
 */
static int serve_settings_read(const options *o, int argc, char **argv, serve_settings *set,
                               char **text, herald_error *err)
{
    *set = (serve_settings){.cfg = {.data_dir = DEFAULT_DATA, .port = 3210, .no_sync = o->no_sync}};
    serve_settings first = *set;
    int rc = hd__options_args(&serve_table, &first, argc, argv, err);
    if (rc) return rc;
    const char *config = first.config ? first.config : getenv("HERALD_CONFIG");
    if (config && *config && (rc = hd__options_file(&serve_table, set, config, text, err)))
        return rc;
    if ((rc = hd__options_env(&serve_table, set, err))) return rc;
    if (o->data_given) set->cfg.data_dir = o->data;
    if (o->app_given) set->cfg.app_dir = o->app;
    if ((rc = hd__options_args(&serve_table, set, argc, argv, err))) return rc;
    set->cfg.fn_limits.dev = set->cfg.dev;
    if (!set->cfg.tls_cert != !set->cfg.tls_key)
        return herald_fail(err, HERALD_EINVAL, "serve: --tls-cert and --tls-key go together");
    return 0;
}

static int cmd_serve(const options *global, int argc, char **argv, herald_error *err)
{
    serve_settings set;
    char *text = NULL; /* the config file's, which string settings point into */
    int rc = serve_settings_read(global, argc, argv, &set, &text, err);
    if (rc == 1) serve_help(stdout);
    if (rc) {
        free(text);
        return rc == 1 ? 0 : serve_usage_error(err);
    }
    hd_server_config cfg = set.cfg;
    options o = *global;
    o.data = cfg.data_dir;
    o.app = cfg.app_dir;
    char public_dir[4096];
    struct stat st;
    if (!cfg.static_dir && o.app) {
        snprintf(public_dir, sizeof public_dir, "%s/public", o.app);
        if (stat(public_dir, &st) == 0 && S_ISDIR(st.st_mode)) cfg.static_dir = public_dir;
    }
    /* From a checkout, the web demo is the page to show. */
    if (!cfg.static_dir && stat("web-demo/index.html", &st) == 0) cfg.static_dir = "web-demo";
    if (cfg.dev && !cfg.host) cfg.host = "127.0.0.1";
    if (o.app) {
        /* Apply the app's schema before serving it. */
        herald_store *s;
        if ((rc = open_store(&o, &s, err))) {
            free(text);
            return fail(err, rc);
        }
        herald_store_close(s);
    }
    rc = hd__server_run(&cfg);
    free(text);
    hd__repl_restart_if_wanted();
    return rc;
}

static bool is_arg(const char *arg, const char *a, const char *b)
{
    return !strcmp(arg, a) || (b && !strcmp(arg, b));
}

int main(int argc, char **argv)
{
    hd__repl_set_argv(argv);
    options o = {.data = getenv("HERALD_DATA"), .app = getenv("HERALD_APP")};
    if (!o.data || !*o.data) o.data = DEFAULT_DATA;
    if (o.app && !*o.app) o.app = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const char *value = eq ? eq + 1 : i + 1 < argc ? argv[i + 1] : NULL;
        bool data = len == 6 && !strncmp(arg, "--data", 6),
             app = len == 5 && !strncmp(arg, "--app", 5);
        if ((data || app) && !(value && *value)) {
            return usage_error(data ? "--data needs a folder" : "--app needs a folder");
        } else if (data || app) {
            *(data ? &o.data : &o.app) = value;
            *(data ? &o.data_given : &o.app_given) = true;
            i += !eq;
        } else if (!strcmp(arg, "--no-sync")) {
            o.no_sync = true;
        } else if (is_arg(arg, "--help", "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (is_arg(arg, "--version", "-V")) {
            puts("herald " HERALD_VERSION);
            return 0;
        } else {
            char what[120];
            snprintf(what, sizeof what, "unknown option %.60s", arg);
            return usage_error(what);
        }
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
    if (!strcmp(cmd, "backup") && rest == 1)
        return cmd_backup(o.data, args[0], "backed up to", &err);
    if (!strcmp(cmd, "restore") && rest == 1)
        return cmd_backup(args[0], o.data, "restored into", &err);
    if (!strcmp(cmd, "serve")) return cmd_serve(&o, rest, args, &err);
    if (!strcmp(cmd, "functions")) return cmd_functions(&o, &err);
    if (!strcmp(cmd, "codegen")) return cmd_codegen(&o, rest, args, &err);
    if (!strcmp(cmd, "admin-key")) return cmd_admin_key(&o, &err);
    if (!strcmp(cmd, "console")) return hd__console_main(rest, args);
    if (!strcmp(cmd, "version") && rest == 0) {
        puts("herald " HERALD_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") && rest == 1 && !strcmp(args[0], "serve")) {
        serve_help(stdout);
        return 0;
    }
    if (!strcmp(cmd, "help") && rest == 0) {
        fputs(usage, stdout);
        return 0;
    }
    return usage_error("unknown command or wrong number of arguments");
}
