/*
 * Fuzz target for the server-function runtime (src/fn.c, the Lua prelude
 * src/fn_prelude.lua, src/search.c): the input is the text of one Lua
 * module, loaded as functions/m.lua of an app against a fixed schema, and
 * every function it registers is called a few ways on a small store.
 *
 * Load errors and call errors are expected (syntax errors, validators,
 * limits, sandbox refusals); crashes, sanitizer reports, leaks, Lua panics
 * and hangs are not, nor is a broken hd__fn_call contract: a failure that
 * leaves a result behind, a success without one, a public caller reaching
 * an internal function, a call of the wrong kind or with arguments that
 * are not an object getting through.
 *
 * Each call has small budgets (200,000 instructions, 8 MiB), so a hostile
 * module costs milliseconds. Code the instruction budget cannot see can
 * still hang (Lua's pattern matching runs in C; Lua runs __gc finalizers
 * with hooks off): libFuzzer reports that as a timeout.
 *
 * Queries run in a read snapshot with a read set; mutations in their own
 * group, committed when they succeed and aborted when they fail, then the
 * group is committed. So that every input sees the same documents, the
 * store is rebuilt from scratch before each input: a fresh temporary
 * folder, opened with no_sync and unlinked once filled. The app folder
 * (one name per process) holds the module only while the bundle reads it.
 * Nothing is left behind however the process ends.
 *
 * HERALD_FUZZ_FN_VERBOSE=1 prints the load error or every call's outcome,
 * to check what a seed reaches.
 */
#include <stdint.h>
#include <sys/stat.h>

#include "fn.h"
#include "fuzz_common.h"
#include "herald/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A strict table, one of any documents and one whose documents are a
 * union: indexes on one and two fields, an int64 field, an array field, an
 * optional object, an id field, bytes, an array-or-null union, and search
 * indexes with and without filter fields.
 */
static const char schema_json[] =
    "{\"tables\":{"
    "\"tasks\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "  \"title\":{\"type\":\"string\"},"
    "  \"owner\":{\"type\":\"string\"},"
    "  \"priority\":{\"type\":\"number\"},"
    "  \"count\":{\"type\":\"int64\",\"optional\":true},"
    "  \"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "  \"meta\":{\"type\":\"object\",\"optional\":true,\"fields\":{"
    "    \"score\":{\"type\":\"number\",\"optional\":true},"
    "    \"note\":{\"type\":\"union\",\"optional\":true,"
    "              \"members\":[{\"type\":\"string\"},{\"type\":\"null\"}]}}},"
    "  \"user\":{\"type\":\"id\",\"table\":\"users\",\"optional\":true},"
    "  \"done\":{\"type\":\"boolean\",\"optional\":true},"
    "  \"blob\":{\"type\":\"bytes\",\"optional\":true}}},"
    "  \"indexes\":[{\"name\":\"by_owner\",\"fields\":[\"owner\"]},"
    "             {\"name\":\"by_owner_priority\",\"fields\":[\"owner\",\"priority\"]},"
    "             {\"name\":\"by_count\",\"fields\":[\"count\"]},"
    "             {\"name\":\"by_score\",\"fields\":[\"meta.score\"]}],"
    "  \"searchIndexes\":[{\"name\":\"search_title\",\"searchField\":\"title\","
    "                    \"filterFields\":[\"owner\",\"done\"]}]},"
    "\"users\":{\"document\":{\"type\":\"any\"},"
    "  \"indexes\":[{\"name\":\"by_name\",\"fields\":[\"name\"]},"
    "             {\"name\":\"by_org_age\",\"fields\":[\"org.id\",\"age\"]}],"
    "  \"searchIndexes\":[{\"name\":\"search_bio\",\"searchField\":\"bio\"}]},"
    "\"events\":{\"document\":{\"type\":\"union\",\"members\":["
    "  {\"type\":\"object\",\"fields\":{\"kind\":{\"type\":\"literal\",\"value\":\"click\"},"
    "                                 \"x\":{\"type\":\"number\"}}},"
    "  {\"type\":\"object\",\"fields\":{\"kind\":{\"type\":\"literal\",\"value\":\"note\"},"
    "                                 \"body\":{\"type\":\"string\"},"
    "                                 \"refs\":{\"type\":\"union\",\"optional\":true,\"members\":["
    "                                   {\"type\":\"array\",\"items\":{\"type\":\"id\",\"table\":\"tasks\"}},"
    "                                   {\"type\":\"null\"}]}}}]},"
    "  \"indexes\":[{\"name\":\"by_kind\",\"fields\":[\"kind\"]}]}}}";

static const char *const tasks[] = {
    "{\"title\":\"Write the fuzzer\",\"owner\":\"ada\",\"priority\":1,\"tags\":[\"fuzz\",\"lua\"],"
    "\"count\":{\"$integer\":\"BwAAAAAAAAA=\"},\"meta\":{\"score\":3.5,\"note\":\"first\"}}",
    "{\"title\":\"Programming in Lua\",\"owner\":\"ada\",\"priority\":2,\"tags\":[],"
    "\"done\":true}",
    "{\"title\":\"progress report: programs, programming\",\"owner\":\"bob\",\"priority\":-1.5,"
    "\"tags\":[\"x\"],\"meta\":{\"note\":null},\"blob\":{\"$bytes\":\"AAEC\"}}",
    "{\"title\":\"\",\"owner\":\"\",\"priority\":1e300,\"tags\":[],"
    "\"count\":{\"$integer\":\"////////f38=\"}}",
    "{\"title\":\"caf\\u00e9 \\u00c9t\\u00e9 ZZZ zzz\",\"owner\":\"bob\",\"priority\":0,"
    "\"tags\":[\"\"],\"done\":false,\"meta\":{}}",
};
static const char *const users[] = {
    "{\"name\":\"ada\",\"age\":36,\"org\":{\"id\":\"o1\"},\"bio\":\"mathematician, programmer\"}",
    "{\"name\":\"bob\",\"age\":{\"$integer\":\"KgAAAAAAAAA=\"},\"org\":{\"id\":\"o1\"},"
    "\"bio\":\"writes programs\"}",
    "{\"name\":\"cy\",\"org\":{\"id\":7},\"tags\":[1,\"x\",null,[[]]]}",
    "{}",
};
static const char *const events[] = {
    "{\"kind\":\"click\",\"x\":1}",
    "{\"kind\":\"note\",\"body\":\"see the first task\",\"refs\":[]}",
};

/* A mutation may write a lot in 200,000 instructions; cap what one input writes. */
#define MAP_BYTES  ((size_t)4 << 20)
#define MAX_MAP    ((size_t)256 << 20)
/* Functions called per input, a little above what a useful module defines. */
#define MAX_CALLED 24

static const hd_fn_limits limits = {.instructions = 200000, .memory = (size_t)8 << 20};

static herald_store *store;
static char store_dir[64];
static char app_dir[] = "/tmp/herald-fuzz-fn-app-XXXXXX";
static char functions_dir[sizeof app_dir + 16];
static char module_path[sizeof app_dir + 32];

/* The ids of the fixed documents, so that argument objects can name them. */
static char task_ids[sizeof tasks / sizeof *tasks][HERALD_ID_CHARS + 1];
static char user_ids[sizeof users / sizeof *users][HERALD_ID_CHARS + 1];
static char event_ids[sizeof events / sizeof *events][HERALD_ID_CHARS + 1];

/* Argument objects (see make_args) and an identity. */
#define NARGS 4
static herald_value args[NARGS], identity, not_object;
static bool verbose;

static void close_store(void)
{
    herald_store_close(store);
    store = NULL;
}

static void open_store(void)
{
    snprintf(store_dir, sizeof store_dir, "/tmp/herald-fuzz-fn-XXXXXX");
    herald_store_options opts = {
        .no_sync = true, .initial_map_size = MAP_BYTES, .max_map_size = MAX_MAP};
    const fz_table tables[] = {
        {"tasks", tasks, sizeof tasks / sizeof *tasks, task_ids, 0},
        {"users", users, sizeof users / sizeof *users, user_ids, 0},
        {"events", events, sizeof events / sizeof *events, event_ids, 0},
    };
    store = fz_store_new(store_dir, &opts, fz_schema(schema_json), tables,
                         sizeof tables / sizeof *tables);
    /* The store keeps its files open; the folder can go now. */
    fz_remove_dir(store_dir);
}

static void parse_into(herald_value *v, const char *json)
{
    herald_error err = {0};
    if (herald_value_from_json(json, strlen(json), v, &err)) fz_die(json, &err);
}

/*
 * {}; the few fields seeds' validators name (id, owner, text, n), once
 * with ordinary values and once with odd ones (an id of the wrong table,
 * empty strings, a float); and one object with a bit of everything, for
 * functions without validators and for validators to reject.
 */
static void make_args(void)
{
    char buf[2048];
    herald_object_init(&args[0]);
    snprintf(buf, sizeof buf, "{\"id\":\"%s\",\"owner\":\"ada\",\"text\":\"prog\",\"n\":3}",
             task_ids[0]);
    parse_into(&args[1], buf);
    snprintf(buf, sizeof buf,
             "{\"id\":\"%s\",\"owner\":\"\",\"text\":\"PROGRAMMING wri\",\"n\":-1.5}", user_ids[1]);
    parse_into(&args[2], buf);
    snprintf(buf, sizeof buf,
             "{\"id\":\"%s\",\"userId\":\"%s\",\"eventId\":\"%s\",\"owner\":\"bob\","
             "\"title\":\"Write the fuzzer\",\"text\":\"caf\\u00e9 zz\",\"n\":0,\"big\":1e300,"
             "\"count\":{\"$integer\":\"////////f38=\"},\"tags\":[\"a\",\"b\"],\"flag\":false,"
             "\"empty\":[],\"meta\":{\"score\":{\"$float\":\"AAAAAAAA8H8=\"},"
             "\"deep\":[[{}],{\"a\":[null]}]},\"blob\":{\"$bytes\":\"AAE=\"},\"none\":null,"
             "\"cursor\":\"not a cursor\"}",
             task_ids[2], user_ids[0], event_ids[1]);
    parse_into(&args[3], buf);
    parse_into(
        &identity,
        "{\"subject\":\"user|ada\",\"issuer\":\"https://auth.example\","
        "\"tokenIdentifier\":\"https://auth.example|user|ada\",\"email\":\"ada@example.com\","
        "\"emailVerified\":true,\"name\":\"Ada\",\"groups\":[\"admins\",\"staff\"]}");
    parse_into(&not_object, "[{}]");
}

static void free_args(void)
{
    for (size_t i = 0; i < NARGS; i++)
        herald_value_free(&args[i]);
    herald_value_free(&identity);
    herald_value_free(&not_object);
}

static void setup(void)
{
    /* mkdtemp picks the app folder's name; write_module makes it anew for each input. */
    if (!mkdtemp(app_dir)) {
        perror("fuzz_fn: mkdtemp");
        abort();
    }
    rmdir(app_dir);
    snprintf(functions_dir, sizeof functions_dir, "%s/functions", app_dir);
    snprintf(module_path, sizeof module_path, "%s/m.lua", functions_dir);
    open_store();
    atexit(close_store);
    make_args();
    atexit(free_args);
    verbose = getenv("HERALD_FUZZ_FN_VERBOSE") != NULL;
}

static void write_module(const uint8_t *data, size_t size)
{
    if (mkdir(app_dir, 0700) != 0 || mkdir(functions_dir, 0700) != 0) {
        perror("fuzz_fn: mkdir");
        abort();
    }
    FILE *f = fopen(module_path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror("fuzz_fn: writing the module");
        abort();
    }
}

/* The bundle holds the module's text: the app folder can go before anything runs. */
static void remove_module(void)
{
    unlink(module_path);
    rmdir(functions_dir);
    rmdir(app_dir);
}

/* Checks what fn.h promises about a call's outcome. */
static void check_outcome(const char *path, int rc, const herald_error *err,
                          const herald_value *result, const herald_value *error_data)
{
    if (rc == 0) {
        if (result->type == HERALD_UNDEFINED || error_data->type != HERALD_UNDEFINED) {
            fprintf(stderr, "fuzz_fn: %s succeeded without a result or with error data\n", path);
            abort();
        }
        return;
    }
    if (rc > 0 || rc < HERALD_EFUNCTION || err->code != rc || result->type != HERALD_UNDEFINED) {
        fprintf(stderr, "fuzz_fn: %s failed with %d (err.code %d, `%s`) and result type %d\n", path,
                rc, err->code, err->message, (int)result->type);
        abort();
    }
}

static int call(hd_fnrt *rt, const char *path, hd_fn_kind kind, hd_fn_kind txn_kind,
                const herald_value *a, const herald_value *who, bool admin)
{
    herald_value result, error_data;
    herald_error err = {0};
    hd_fncall c = {.path = path,
                   .args = a,
                   .identity = who,
                   .admin = admin,
                   .kind = kind,
                   .now_ms = 1700000000123.0};
    int rc;
    if (txn_kind == HD_FN_MUTATION) {
        herald_group *g;
        herald_txn *m;
        if (herald_group_begin(store, &g, &err)) fz_die("group", &err);
        if (herald_mutation_begin(g, &m, &err)) fz_die("mutation", &err);
        c.txn = m;
        rc = hd__fn_call(rt, &c, &result, &error_data, &err);
        herald_error cerr = {0};
        /* A commit may fail (the map is capped): not a bug of the runtime. */
        if (rc)
            herald_mutation_abort(m);
        else
            herald_mutation_commit(m, NULL, &cerr);
        herald_group_commit(g, &cerr);
        herald_group_free(g);
    } else {
        herald_txn *t;
        herald_read_set rs;
        if (herald_read_begin(store, &t, &err)) fz_die("read", &err);
        herald_read_set_init(&rs);
        c.txn = t;
        c.rs = &rs;
        rc = hd__fn_call(rt, &c, &result, &error_data, &err);
        herald_read_set_free(&rs);
        herald_txn_end(t);
    }
    check_outcome(path, rc, &err, &result, &error_data);
    char *json = rc == 0 ? herald_value_to_json(&result) : NULL;
    char *data_json =
        error_data.type != HERALD_UNDEFINED ? herald_value_to_json(&error_data) : NULL;
    if (verbose)
        fprintf(stderr, "fuzz_fn: %s %s(args %d, %s, %s): %d %.300s%s%.200s\n", path,
                kind == HD_FN_QUERY ? "query" : "mutation",
                a == &not_object ? -2
                : a              ? (int)(a - args)
                                 : -1,
                who ? "identity" : "anonymous", admin ? "admin" : "public", rc,
                rc     ? err.message
                : json ? json
                       : "?",
                data_json ? " data " : "", data_json ? data_json : "");
    free(json);
    free(data_json);
    herald_value_free(&result);
    herald_value_free(&error_data);
    return rc;
}

/*
 * Each function: four argument/identity/admin combinations, then once as
 * the wrong kind and once with arguments that are not an object (both must
 * be refused before the handler runs).
 */
static void call_all(hd_fnrt *rt)
{
    static const struct {
        int args;
        bool identity, admin;
    } plans[] = {{0, false, false}, {1, true, false}, {2, false, true}, {3, true, true}};
    size_t n = hd__fnrt_count(rt);
    for (size_t i = 0; i < n && i < MAX_CALLED; i++) {
        const char *path = hd__fnrt_path(rt, i);
        hd_fn_kind kind;
        bool internal;
        if (!path || hd__fn_kind(rt, path, &kind, &internal) != 0) {
            /* A registered name that is not a valid path ("m:a:b", "m:"). */
            call(rt, path ? path : "m:", HD_FN_QUERY, HD_FN_QUERY, NULL, NULL, true);
            continue;
        }
        for (size_t p = 0; p < sizeof plans / sizeof *plans; p++) {
            int rc = call(rt, path, kind, kind, &args[plans[p].args],
                          plans[p].identity ? &identity : NULL, plans[p].admin);
            if (internal && !plans[p].admin && rc != HERALD_ENOTFOUND) {
                fprintf(stderr, "fuzz_fn: internal %s reached without the admin key (%d)\n", path,
                        rc);
                abort();
            }
        }
        hd_fn_kind other = kind == HD_FN_QUERY ? HD_FN_MUTATION : HD_FN_QUERY;
        int rc = call(rt, path, other, kind, NULL, NULL, true);
        if (rc != HERALD_EINVAL) {
            fprintf(stderr, "fuzz_fn: %s called as the wrong kind gave %d\n", path, rc);
            abort();
        }
        rc = call(rt, path, kind, kind, &not_object, NULL, true);
        if (rc != HERALD_EVALIDATION) {
            fprintf(stderr, "fuzz_fn: %s called with arguments that are not an object gave %d\n",
                    path, rc);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!store) {
        setup();
    } else {
        close_store();
        open_store();
    }
    write_module(data, size);
    herald_error err = {0};
    hd_fnbundle *bundle = NULL;
    int rc = hd__fnbundle_read(app_dir, &bundle, &err);
    remove_module();
    if (rc) fz_die("reading the module", &err);
    if (hd__fnbundle_count(bundle) != 1) fz_die("the bundle lost the module", NULL);
    hd_fnrt *rt = NULL;
    if (hd__fnrt_new(bundle, herald_store_schema(store), &limits, &rt, &err) == 0) {
        if (hd__fnrt_bundle(rt) != bundle) fz_die("the runtime lost its bundle", NULL);
        call_all(rt);
        hd__fnrt_free(rt);
    } else if (rt) {
        fz_die("a failed load left a runtime behind", NULL);
    } else if (verbose) {
        fprintf(stderr, "fuzz_fn: load failed (%d): %s\n", err.code, err.message);
    }
    hd__fnbundle_unref(bundle);
    return 0;
}
