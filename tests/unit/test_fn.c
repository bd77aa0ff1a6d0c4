/*
 * The function runtime: loading modules, argument and return validators,
 * ctx.db reads and writes, read sets, nested calls, structured errors,
 * rollback, the sandbox and its limits (hostile functions), reloads,
 * isolation between calls (nothing a call changes is seen by the next) and
 * what error messages tell callers who are not the admin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fn.h"
#include "herald/query.h"
#include "herald/store.h"

static char dir_template[] = "/tmp/herald-test-fn-XXXXXX";
static char data_dir[300], app_dir[300];
static herald_store *store;

static const char *schema_json =
    "{\"tables\":{"
    "\"feeds\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "  \"userId\":{\"type\":\"string\"},"
    "  \"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "  \"count\":{\"type\":\"int64\",\"optional\":true},"
    "  \"status\":{\"type\":\"string\"}}},"
    "  \"indexes\":[{\"name\":\"by_user\",\"fields\":[\"userId\"]}]},"
    "\"notes\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "  \"owner\":{\"type\":\"string\"},\"body\":{\"type\":\"string\"}}},"
    "  \"searchIndexes\":[{\"name\":\"search_body\",\"searchField\":\"body\","
    "                    \"filterFields\":[\"owner\"]}]}}}";

static void write_file(const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/functions/%s", app_dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) exit(1);
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/functions/%s", app_dir, name);
    unlink(path);
}

static const char *feeds_lua =
    "local M = {}\n"
    "M.create = herald.mutation{\n"
    "  args = {userId = v.string(), tags = v.optional(v.array(v.string()))},\n"
    "  returns = v.id('feeds'),\n"
    "  handler = function(ctx, args)\n"
    "    return ctx.db:insert('feeds', {userId = args.userId, tags = args.tags or {},\n"
    "                                   status = 'pending', count = 1})\n"
    "  end}\n"
    "M.list = herald.query{\n"
    "  args = {userId = v.string()},\n"
    "  handler = function(ctx, args)\n"
    "    return ctx.db:query('feeds'):withIndex('by_user', function(q) return q:eq('userId', "
    "args.userId) end):order('desc'):collect()\n"
    "  end}\n"
    "M.firstPending = herald.query{\n"
    "  handler = function(ctx)\n"
    "    return ctx.db.query('feeds'):filter(function(q) return q:eq(q:field('status'), "
    "'pending') end):first()\n"
    "  end}\n"
    "M.get = herald.query{args = {id = v.id('feeds')}, handler = function(ctx, a) return "
    "ctx.db:get(a.id) end}\n"
    "M.whoami = herald.query{handler = function(ctx)\n"
    "  local me = ctx.auth:getUserIdentity()\n"
    "  return me and me.subject or herald.null end}\n"
    "M.now = herald.query{handler = function(ctx) return {ctx.now, os.time()} end}\n"
    "M.twoThenFail = herald.mutation{args = {userId = v.string()}, handler = function(ctx, a)\n"
    "  ctx.db:insert('feeds', {userId = a.userId, tags = {}, status = 'x'})\n"
    "  ctx.db:insert('feeds', {userId = a.userId, tags = {}, status = 'y'})\n"
    "  error('no, after all')\n"
    "end}\n"
    "M.structured = herald.mutation{handler = function(ctx)\n"
    "  herald.error{code = 'NOT_OWNER', message = 'not your feed'}\n"
    "end}\n"
    "M.nested = herald.mutation{args = {userId = v.string()}, handler = function(ctx, a)\n"
    "  local id = ctx:runMutation('feeds:create', {userId = a.userId})\n"
    "  local list = ctx:runQuery('feeds:list', {userId = a.userId})\n"
    "  return #list\n"
    "end}\n"
    "M.caughtMany = herald.query{handler = function(ctx)\n"
    "  local n = 0\n"
    "  for i = 1, 500 do if not pcall(ctx.runQuery, ctx, 'feeds:badReturn', {}) then n = n + 1 end "
    "end\n"
    "  return n + #ctx:runQuery('feeds:now', {}) end}\n"
    "M.secret = herald.internalQuery{handler = function() return 'internal' end}\n"
    "M.badReturn = herald.query{returns = v.number(), handler = function() return 'text' end}\n"
    "M.unset = herald.mutation{args = {id = v.id('feeds')}, handler = function(ctx, a)\n"
    "  ctx.db:patch(a.id, {count = herald.unset, status = 'ready'})\n"
    "  return ctx.db:get(a.id)\n"
    "end}\n"
    "M.replaceIt = herald.mutation{args = {id = v.id('feeds'), unset = v.boolean()}, handler = "
    "function(ctx, a)\n"
    "  ctx.db:replace(a.id, {userId = 'r', tags = {}, status = a.unset and herald.unset or "
    "'new'})\n"
    "  return ctx.db:get(a.id)\n"
    "end}\n"
    "M.note = herald.mutation{args = {owner = v.string(), body = v.string()}, handler = "
    "function(ctx, a) return ctx.db:insert('notes', a) end}\n"
    "M.search = herald.query{args = {text = v.string(), owner = v.optional(v.string())}, "
    "handler = function(ctx, a)\n"
    "  local r = {}\n"
    "  for _, n in ipairs(ctx.db:query('notes'):withSearchIndex('search_body', function(q)\n"
    "      q:search('body', a.text) if a.owner then q:eq('owner', a.owner) end return q end)"
    ":take(10)) do r[#r + 1] = n.body end\n"
    "  return herald.array(r) end}\n"
    "M.badSearch = herald.query{handler = function(ctx) return ctx.db:query('notes')"
    ":withSearchIndex('search_body', function(q) return q:search('owner', 'x') end):collect() "
    "end}\n"
    "M.writeInQuery = herald.query{handler = function(ctx) return ctx.db:insert('feeds', "
    "{userId='q', tags={}, status='s'}) end}\n"
    "return M\n";

static const char *hostile_lua =
    "local H = {}\n"
    "H.spin = herald.query{handler = function() while true do end end}\n"
    "H.spinCaught = herald.query{handler = function()\n"
    "  while true do pcall(function() while true do end end) end end}\n"
    "H.spinCoroutine = herald.query{handler = function()\n"
    "  local co = coroutine.wrap(function() while true do end end) co() end}\n"
    "H.eat = herald.query{handler = function() local t = {} for i = 1, 1e9 do t[i] = "
    "string.rep('x', 1000) .. i end end}\n"
    "H.bigString = herald.query{handler = function() return #string.rep('x', 1 << 30) end}\n"
    "H.io = herald.query{handler = function() return io.open('/etc/passwd') end}\n"
    "H.osExecute = herald.query{handler = function() return os.execute('true') end}\n"
    "H.debugLib = herald.query{handler = function() return debug.getinfo(1) end}\n"
    "H.dump = herald.query{handler = function() return string.dump(function() end) end}\n"
    "H.dumpMeta = herald.query{handler = function() return ('x').dump(print) end}\n"
    "H.bytecode = herald.query{handler = function() return load('\\27Lua') end}\n"
    "H.requireOs = herald.query{handler = function() return require('os') end}\n"
    "H.dofile = herald.query{handler = function() return dofile('/etc/passwd') end}\n"
    "H.deep = herald.query{handler = function() local t = {} local c = t for i = 1, 200 do "
    "c.x = {} c = c.x end return t end}\n"
    "H.cycle = herald.query{handler = function() local t = {} t.self = t return t end}\n"
    "H.fn = herald.query{handler = function() return print end}\n"
    "H.mixed = herald.query{handler = function() return {1, 2, x = 3} end}\n"
    "H.recurse = herald.query{handler = function(ctx) return ctx:runQuery('hostile:recurse', {}) "
    "end}\n"
    "H.finalizer = herald.query{handler = function() return setmetatable({}, {__gc = "
    "function() while true do end end}) end}\n"
    "H.memCaught = herald.query{handler = function() local ok = pcall(string.rep, 'x', 64 << 20) "
    "return not ok end}\n"
    "H.writingQuery = herald.query{handler = function(ctx) return ctx.db:insert('feeds', "
    "{userId = 'w', tags = {}, status = 'w'}) end}\n"
    "H.callsWritingQuery = herald.mutation{handler = function(ctx) return "
    "ctx:runQuery('hostile:writingQuery', {}) end}\n"
    "H.getmeta = herald.query{handler = function() return getmetatable(herald.array{}) end}\n"
    "return H\n";

static hd_fnrt *load(const hd_fn_limits *lim, herald_error *err)
{
    hd_fnbundle *b = NULL;
    hd_fnrt *rt = NULL;
    int rc = hd__fnbundle_read(app_dir, &b, err);
    if (rc == 0) rc = hd__fnrt_new(b, herald_store_schema(store), lim, &rt, err);
    hd__fnbundle_unref(b);
    return rc ? NULL : rt;
}

/* load(), reporting why it failed. */
static hd_fnrt *load_ok(const hd_fn_limits *lim)
{
    herald_error err = {0};
    hd_fnrt *rt = load(lim, &err);
    if (!rt) fprintf(stderr, "load: %s\n", err.message);
    CHECK(rt != NULL);
    return rt;
}

typedef struct outcome {
    int rc;
    char *result; /* JSON */
    char *data;   /* JSON of error data, or NULL */
    herald_error err;
} outcome;

static void outcome_free(outcome *o)
{
    free(o->result);
    free(o->data);
}

static outcome call(hd_fnrt *rt, hd_fn_kind kind, const char *path, const char *args,
                    const herald_value *identity, bool admin, herald_read_set *rs)
{
    outcome o = {0};
    herald_value a = json(args ? args : "{}"), result, data;
    hd_fncall c = {.path = path,
                   .args = &a,
                   .identity = identity,
                   .admin = admin,
                   .kind = kind,
                   .rs = rs,
                   .now_ms = 1700000000123.0};
    if (kind == HD_FN_MUTATION) {
        herald_group *g;
        herald_txn *m;
        CHECK_OK(herald_group_begin(store, &g, &o.err));
        CHECK_OK(herald_mutation_begin(g, &m, &o.err));
        c.txn = m;
        o.rc = hd__fn_call(rt, &c, &result, &data, &o.err);
        if (o.rc)
            herald_mutation_abort(m);
        else
            CHECK_OK(herald_mutation_commit(m, NULL, &o.err));
        CHECK_OK(herald_group_commit(g, &o.err));
        herald_group_free(g);
    } else {
        herald_txn *t;
        CHECK_OK(herald_read_begin(store, &t, &o.err));
        c.txn = t;
        o.rc = hd__fn_call(rt, &c, &result, &data, &o.err);
        herald_txn_end(t);
    }
    if (o.rc == 0) o.result = herald_value_to_json(&result);
    if (data.type != HERALD_UNDEFINED) o.data = herald_value_to_json(&data);
    herald_value_free(&result);
    herald_value_free(&data);
    herald_value_free(&a);
    return o;
}

static void expect_ok(hd_fnrt *rt, hd_fn_kind kind, const char *path, const char *args,
                      const char *want)
{
    outcome o = call(rt, kind, path, args, NULL, false, NULL);
    if (o.rc) fprintf(stderr, "%s: %s\n", path, o.err.message);
    CHECK(o.rc == 0);
    if (want && (!o.result || strcmp(o.result, want))) {
        fprintf(stderr, "%s returned %s, expected %s\n", path, o.result ? o.result : "-", want);
        CHECK(0);
    }
    outcome_free(&o);
}

static void expect_fail(hd_fnrt *rt, hd_fn_kind kind, const char *path, const char *args, int code,
                        const char *substring)
{
    outcome o = call(rt, kind, path, args, NULL, false, NULL);
    if (o.rc != code || (substring && !strstr(o.err.message, substring))) {
        fprintf(stderr, "%s: got %d `%s`, expected %d with `%s`\n", path, o.rc, o.err.message, code,
                substring ? substring : "");
        CHECK(0);
    }
    outcome_free(&o);
}

static uint64_t count_feeds(void)
{
    herald_txn *t;
    herald_error err;
    uint64_t n = 0;
    CHECK_OK(herald_read_begin(store, &t, &err));
    CHECK_OK(herald_table_count(t, "feeds", &n, &err));
    herald_txn_end(t);
    return n;
}

static void test_basics(void)
{
    hd_fnrt *rt = load_ok(NULL);
    if (!rt) return;
    CHECK(hd__fnrt_count(rt) > 10);

    outcome o = call(rt, HD_FN_MUTATION, "feeds:create", "{\"userId\":\"u1\"}", NULL, false, NULL);
    CHECK(o.rc == 0 && o.result && strlen(o.result) == 34);
    char id[40] = "";
    if (o.result) snprintf(id, sizeof id, "%.32s", o.result + 1);
    outcome_free(&o);
    expect_ok(rt, HD_FN_MUTATION, "feeds.js:create", "{\"userId\":\"u1\",\"tags\":[\"a\"]}", NULL);

    /* The empty tags list was stored as an array, the count as an int64. */
    char args[100];
    snprintf(args, sizeof args, "{\"id\":\"%s\"}", id);
    o = call(rt, HD_FN_QUERY, "feeds:get", args, NULL, false, NULL);
    CHECK(o.rc == 0 && o.result && strstr(o.result, "\"tags\":[]") &&
          strstr(o.result, "\"count\":{\"$integer\""));
    outcome_free(&o);

    /* Reads go into the read set. */
    herald_read_set rs;
    herald_read_set_init(&rs);
    o = call(rt, HD_FN_QUERY, "feeds:list", "{\"userId\":\"u1\"}", NULL, false, &rs);
    CHECK(o.rc == 0 && o.result && strstr(o.result, "\"a\""));
    CHECK(rs.len >= 1);
    herald_read_set_free(&rs);
    outcome_free(&o);
    expect_ok(rt, HD_FN_QUERY, "feeds:firstPending", NULL, NULL);
    expect_ok(rt, HD_FN_QUERY, "feeds:now", NULL, "[1700000000123,1700000000]");

    /* Arguments are validated before the handler runs, naming the argument. */
    expect_fail(rt, HD_FN_MUTATION, "feeds:create", "{\"userId\":5}", HERALD_EVALIDATION, "userId");
    expect_fail(rt, HD_FN_MUTATION, "feeds:create", "{}", HERALD_EVALIDATION, "userId");
    expect_fail(rt, HD_FN_MUTATION, "feeds:create", "{\"userId\":\"u\",\"extra\":1}",
                HERALD_EVALIDATION, "extra");
    expect_fail(rt, HD_FN_QUERY, "feeds:get", "{\"id\":\"nope\"}", HERALD_EVALIDATION, "id");
    expect_fail(rt, HD_FN_QUERY, "feeds:badReturn", NULL, HERALD_EVALIDATION, "return value");

    /* Kinds, visibility, unknown functions. */
    expect_fail(rt, HD_FN_QUERY, "feeds:create", "{\"userId\":\"u\"}", HERALD_EINVAL, "mutation");
    expect_fail(rt, HD_FN_QUERY, "feeds:nothing", NULL, HERALD_ENOTFOUND, "feeds:nothing");
    expect_fail(rt, HD_FN_QUERY, "feeds:secret", NULL, HERALD_ENOTFOUND, "public");
    o = call(rt, HD_FN_QUERY, "feeds:secret", "{}", NULL, true, NULL);
    CHECK(o.rc == 0 && o.result && !strcmp(o.result, "\"internal\""));
    outcome_free(&o);
    expect_fail(rt, HD_FN_QUERY, "feeds:writeInQuery", NULL, HERALD_EACCESS, "only available");

    /* A failing mutation keeps none of its writes. */
    uint64_t before = count_feeds();
    expect_fail(rt, HD_FN_MUTATION, "feeds:twoThenFail", "{\"userId\":\"z\"}", HERALD_EFUNCTION,
                "no, after all");
    CHECK(count_feeds() == before);

    /* Structured errors carry their data. */
    o = call(rt, HD_FN_MUTATION, "feeds:structured", "{}", NULL, false, NULL);
    CHECK(o.rc == HERALD_EFUNCTION && !strcmp(o.err.message, "not your feed"));
    CHECK(o.data && strstr(o.data, "\"code\":\"NOT_OWNER\""));
    outcome_free(&o);

    /* A nested failure caught by app code, many times over, costs nothing lasting. */
    expect_ok(rt, HD_FN_QUERY, "feeds:caughtMany", NULL, "502");

    /* Nested calls share the transaction. */
    expect_ok(rt, HD_FN_MUTATION, "feeds:nested", "{\"userId\":\"n1\"}", "1");

    /* herald.unset removes a field. */
    expect_ok(rt, HD_FN_MUTATION, "feeds:unset", args, NULL);
    o = call(rt, HD_FN_QUERY, "feeds:get", args, NULL, false, NULL);
    CHECK(o.rc == 0 && o.result && !strstr(o.result, "count") && strstr(o.result, "ready"));
    outcome_free(&o);

    /* Full-text search: BM25, the last term as a prefix, filter fields. Both notes match
     * both terms; the short one ranks first (BM25 weighs a match in a short text more than
     * a repeat in a long one). */
    expect_ok(rt, HD_FN_MUTATION, "feeds:note", "{\"owner\":\"a\",\"body\":\"Lua programming\"}",
              NULL);
    expect_ok(rt, HD_FN_MUTATION, "feeds:note",
              "{\"owner\":\"b\",\"body\":\"programs in C and Lua, more Lua\"}", NULL);
    expect_ok(rt, HD_FN_MUTATION, "feeds:note", "{\"owner\":\"a\",\"body\":\"gardening\"}", NULL);
    expect_ok(rt, HD_FN_QUERY, "feeds:search", "{\"text\":\"lua prog\"}",
              "[\"Lua programming\",\"programs in C and Lua, more Lua\"]");
    expect_ok(rt, HD_FN_QUERY, "feeds:search", "{\"text\":\"LUA\",\"owner\":\"a\"}",
              "[\"Lua programming\"]");
    expect_ok(rt, HD_FN_QUERY, "feeds:search", "{\"text\":\"nothing here\"}", "[]");
    expect_fail(rt, HD_FN_QUERY, "feeds:badSearch", NULL, HERALD_EINVAL, "searches `body`");

    /* replace writes the whole document; herald.unset has no place there. */
    snprintf(args, sizeof args, "{\"id\":\"%s\",\"unset\":false}", id);
    o = call(rt, HD_FN_MUTATION, "feeds:replaceIt", args, NULL, false, NULL);
    CHECK(o.rc == 0 && o.result && strstr(o.result, "\"status\":\"new\"") &&
          !strstr(o.result, "\"a\"") && strstr(o.result, "\"userId\":\"r\""));
    outcome_free(&o);
    snprintf(args, sizeof args, "{\"id\":\"%s\",\"unset\":true}", id);
    expect_fail(rt, HD_FN_MUTATION, "feeds:replaceIt", args, HERALD_EINVAL, "only allowed");

    /* Identity. */
    herald_value me = json("{\"subject\":\"user-7\",\"issuer\":\"https://x\"}");
    o = call(rt, HD_FN_QUERY, "feeds:whoami", "{}", &me, false, NULL);
    CHECK(o.rc == 0 && o.result && !strcmp(o.result, "\"user-7\""));
    outcome_free(&o);
    expect_ok(rt, HD_FN_QUERY, "feeds:whoami", NULL, "null");
    herald_value_free(&me);
    hd__fnrt_free(rt);
}

static void test_hostile(void)
{
    write_file("hostile.lua", hostile_lua);
    hd_fn_limits lim = {.instructions = 2000000, .memory = 16 * 1024 * 1024};
    hd_fnrt *rt = load_ok(&lim);
    if (!rt) return;
    expect_fail(rt, HD_FN_QUERY, "hostile:spin", NULL, HERALD_ELIMIT, "instruction limit");
    expect_fail(rt, HD_FN_QUERY, "hostile:spinCaught", NULL, HERALD_ELIMIT, "instruction limit");
    expect_fail(rt, HD_FN_QUERY, "hostile:spinCoroutine", NULL, HERALD_ELIMIT, "instruction limit");
    expect_fail(rt, HD_FN_QUERY, "hostile:eat", NULL, HERALD_ELIMIT, "memory limit");
    expect_fail(rt, HD_FN_QUERY, "hostile:bigString", NULL, HERALD_ELIMIT, NULL);
    expect_fail(rt, HD_FN_QUERY, "hostile:io", NULL, HERALD_EFUNCTION, "io");
    expect_fail(rt, HD_FN_QUERY, "hostile:osExecute", NULL, HERALD_EFUNCTION, "execute");
    expect_fail(rt, HD_FN_QUERY, "hostile:debugLib", NULL, HERALD_EFUNCTION, "debug");
    expect_fail(rt, HD_FN_QUERY, "hostile:dump", NULL, HERALD_EFUNCTION, "dump");
    expect_fail(rt, HD_FN_QUERY, "hostile:dumpMeta", NULL, HERALD_EFUNCTION, "dump");
    outcome o = call(rt, HD_FN_QUERY, "hostile:bytecode", "{}", NULL, false, NULL);
    /* load() returns nil and a message for binary chunks: the message is returned here. */
    CHECK(o.rc == 0 && o.result && !strcmp(o.result, "null"));
    outcome_free(&o);
    expect_fail(rt, HD_FN_QUERY, "hostile:requireOs", NULL, HERALD_EFUNCTION, "no functions/os");
    expect_fail(rt, HD_FN_QUERY, "hostile:dofile", NULL, HERALD_EFUNCTION, "dofile");
    expect_fail(rt, HD_FN_QUERY, "hostile:deep", NULL, HERALD_ELIMIT, "deeper");
    expect_fail(rt, HD_FN_QUERY, "hostile:cycle", NULL, HERALD_ELIMIT, "deeper");
    expect_fail(rt, HD_FN_QUERY, "hostile:fn", NULL, HERALD_EINVAL, "function");
    expect_fail(rt, HD_FN_QUERY, "hostile:mixed", NULL, HERALD_EINVAL, "named fields");
    expect_fail(rt, HD_FN_QUERY, "hostile:recurse", NULL, HERALD_ELIMIT, "nested");
    expect_ok(rt, HD_FN_QUERY, "hostile:getmeta", NULL, "false");
    /* Finalizers would run outside every budget (hooks are off in them): refused. */
    expect_fail(rt, HD_FN_QUERY, "hostile:finalizer", NULL, HERALD_EFUNCTION, "__gc");
    /* A memory error caught with pcall still fails the call. */
    expect_fail(rt, HD_FN_QUERY, "hostile:memCaught", NULL, HERALD_ELIMIT, "memory limit");
    /* A query stays read-only when a mutation calls it. */
    uint64_t before = count_feeds();
    expect_fail(rt, HD_FN_MUTATION, "hostile:callsWritingQuery", NULL, HERALD_EACCESS,
                "only available in mutations");
    CHECK(count_feeds() == before);
    /* After all that the runtime still works. */
    expect_ok(rt, HD_FN_QUERY, "feeds:now", NULL, "[1700000000123,1700000000]");
    hd__fnrt_free(rt);
    remove_file("hostile.lua");
}

/*
 * Every way a call could leave something behind for the next one: globals,
 * library tables, the string metatable, herald and v, ctx's tables and the
 * query builder's, the app's own module tables and module-level locals.
 * `poison` tries them all (each in a pcall: today each one must fail, or
 * change only the call that made it); `probe` lists what it finds changed.
 */
static const char *leak_lua =
    "local reg = require('reg')\n"
    "reg.add('loaded')\n" /* module top levels may still build state */
    "local M = {}\n"
    "local counter = 0\n"
    "local cache = {}\n"
    "local CONST = {a = 1, nested = {b = 2}}\n"
    "M.list = {1, 2, 3}\n"
    "local Cls = {}\n"
    "Cls.__index = Cls\n"
    "function Cls.new(x) return setmetatable({x = x}, Cls) end\n"
    "function Cls:get() return self.x end\n"
    "local ONE = Cls.new(1)\n"
    "local Base = {}\n"
    "Base.__index = Base\n"
    "function Base:hello() return 'hi' end\n"
    "local Derived = setmetatable({}, {__index = Base})\n"
    "Derived.__index = Derived\n"
    "local D1 = setmetatable({}, Derived)\n"
    "local BIG = herald.int64(5)\n"
    "local STATUS = v.union(v.literal('a'), v.literal('b'))\n"
    "GLOBAL_CONF = {n = 1}\n" /* globals set at load time stay, read-only */
    "function globalHelper() return 'helped' end\n"
    "local function poison(ctx)\n"
    "  local pwned = function() return 'pwned' end\n"
    "  local tries = {\n"
    "    function() string.upper = pwned end,\n"
    "    function() rawset(string, 'upper', pwned) end,\n"
    "    function() table.insert = pwned end,\n"
    "    function() math.floor = pwned end,\n"
    "    function() utf8.char = pwned end,\n"
    "    function() coroutine.wrap = pwned end,\n"
    "    function() os.time = pwned end,\n"
    "    function() herald.query = pwned end,\n"
    "    function() rawset(herald, 'array', pwned) end,\n"
    "    function() v.string = pwned end,\n"
    "    function() getmetatable('').__index = {upper = pwned} end,\n"
    "    function() getmetatable('').__index.upper = pwned end,\n"
    "    function() getmetatable('').__add = pwned end,\n"
    "    function() leaked = 'yes' end,\n"
    "    function() _G.leakedG = 'yes' end,\n"
    "    function() rawset(_G, 'leakedRaw', 'yes') end,\n"
    "    function() rawset(_ENV, 'leakedEnv', 'yes') end,\n"
    "    function() load('leakedByLoad = true; string = nil')() end,\n"
    "    function() setmetatable(_G, {__index = function() return 'pwned' end}) end,\n"
    "    function() require('leak').list[1] = 99 end,\n"
    "    function() table.insert(require('leak').list, 4) end,\n"
    "    function() require('leak').extra = true end,\n"
    "    function() M.probe = nil end,\n"
    "    function() CONST.a = 99 end,\n"
    "    function() CONST.nested.b = 99 end,\n"
    "    function() rawset(CONST, 'a', 99) end,\n"
    "    function() cache[#cache + 1] = 1 end,\n"
    "    function() counter = counter + 1 end,\n"
    "    function() reg.add('call') end,\n"
    "    function() Cls.get = pwned end,\n"
    "    function() getmetatable(ONE).get = pwned end,\n"
    "    function() ONE.x = 99 end,\n"
    "    function() Base.hello = pwned end,\n"
    "    function() BIG.value = 6 end,\n"
    "    function() STATUS.members[1] = v.literal('c') end,\n"
    "    function() GLOBAL_CONF.n = 99 end,\n"
    "    function() rawset(GLOBAL_CONF, 'n', 99) end,\n"
    "    function() globalHelper = pwned end,\n"
    "    function() _G = 'pwned' end,\n"
    "    function() ctx.db.get = pwned end,\n"
    "    function() ctx.auth.isAdmin = pwned end,\n"
    "    function() getmetatable(ctx.db:query('feeds')).first = pwned end,\n"
    "    function() ctx.db:query('feeds').__index.first = pwned end,\n"
    "    function() ctx.db:query('feeds'):withIndex('by_user', function(q) q.__index.eq = pwned "
    "return q end) end,\n"
    "    function() ctx.db:query('notes'):withSearchIndex('search_body', function(q) "
    "q.__index.search = pwned return q:search('body', 'x') end) end,\n"
    "    function() ctx.db:query('feeds'):filter(function(q) q.eq = pwned return q:eq(1, 1) end) "
    "end,\n"
    "    function() rawset(_G, 'herald', nil) end,\n"
    "    function() herald = nil end,\n"
    "    function() string = nil end,\n"
    "  }\n"
    "  local changed = 0\n"
    "  for _, f in ipairs(tries) do if pcall(f) then changed = changed + 1 end end\n"
    "  return changed\n"
    "end\n"
    "M.poison = herald.query{handler = poison}\n"
    "M.poisonMutation = herald.mutation{handler = poison}\n"
    "M.probe = herald.query{handler = function(ctx)\n"
    "  local bad = herald.array{}\n"
    "  local function want(name, ok) if not ok then bad[#bad + 1] = name end end\n"
    "  want('string.upper', string.upper('a') == 'A')\n"
    "  want('method', ('a'):upper() == 'A')\n"
    "  want('string+', not pcall(function() return 'a' + {} end))\n"
    "  want('table.insert', table.insert ~= nil and select(2, pcall(table.insert)) ~= 'pwned')\n"
    "  want('math.floor', math.floor(1.5) == 1)\n"
    "  want('utf8.char', utf8.char(65) == 'A')\n"
    "  want('coroutine.wrap', type(coroutine.wrap(function() end)) == 'function')\n"
    "  want('os.time', os.time() == 1700000000)\n"
    "  want('herald', type(herald) == 'table' and herald.query ~= nil and herald.query({handler "
    "= print}) ~= 'pwned')\n"
    "  want('herald.array', herald.array ~= nil and herald.isArray(herald.array{}))\n"
    "  want('v.string', type(v.string()) == 'table')\n"
    "  want('leaked', leaked == nil and leakedG == nil and leakedRaw == nil and leakedEnv == nil "
    "and leakedByLoad == nil and rawget(_G, 'leaked') == nil)\n"
    "  want('nothingHere', nothingHere == nil)\n"
    "  want('module table', #require('leak').list == 3 and require('leak').list[1] == 1 and "
    "require('leak').extra == nil and M.probe ~= nil)\n"
    "  want('CONST', CONST.a == 1 and CONST.nested.b == 2 and rawget(CONST, 'a') == 1)\n"
    "  want('cache', #cache == 0 and next(cache) == nil)\n"
    "  want('counter', counter == 0)\n"
    "  want('reg', #reg.items == 1 and reg.items[1] == 'loaded')\n"
    "  want('Cls', ONE:get() == 1 and Cls.new(2):get() == 2 and ONE.x == 1)\n"
    "  want('Derived', D1:hello() == 'hi' and setmetatable({}, Derived):hello() == 'hi')\n"
    "  want('BIG', (BIG + 1).value == 6 and BIG == herald.int64(5) and BIG.value == 5)\n"
    "  want('STATUS', #STATUS.members == 2 and v.optional(STATUS).optional == true)\n"
    "  want('load-time globals', globalHelper() == 'helped' and GLOBAL_CONF.n == 1)\n"
    "  want('_G', type(_G) == 'table' and _G.string == string)\n"
    "  want('ctx.db', select(2, pcall(ctx.db.get, ctx.db, 'x')) ~= 'pwned')\n"
    "  want('ctx.auth', ctx.auth:isAdmin() == false)\n"
    "  want('withIndex', ctx.db:query('feeds'):withIndex('by_user', function(q) return "
    "q:eq('userId', 'nobody') end):first() == nil)\n"
    "  want('search', #ctx.db:query('notes'):withSearchIndex('search_body', function(q) return "
    "q:search('body', 'nothing') end):take(1) == 0)\n"
    "  want('query', ctx.db:query('feeds'):filter(function(q) return q:eq(q:field('userId'), "
    "'nobody') end):first() == nil)\n"
    "  return bad\n"
    "end}\n"
    /* Reading module state works as before: pairs, ipairs, #, next, table functions. */
    "M.read = herald.query{handler = function()\n"
    "  local keys = {}\n"
    "  for k in pairs(CONST) do keys[#keys + 1] = k end\n"
    "  table.sort(keys)\n"
    "  local sum = 0\n"
    "  for _, x in ipairs(M.list) do sum = sum + x end\n"
    "  return {keys = table.concat(keys, ','), sum = sum, n = #M.list, unpacked = "
    "select('#', table.unpack(M.list)), joined = table.concat(M.list, '+'), first = "
    "next(M.list), const = CONST, one = ONE:get(), list = M.list, big = BIG, status = STATUS}\n"
    "end}\n"
    "M.count = herald.query{handler = function() counter = counter + 1 return counter end}\n"
    "M.writeState = herald.mutation{handler = function() CONST.a = 2 end}\n"
    "M.seed = herald.query{handler = function() math.randomseed(42) return math.random(1, 100) "
    "end}\n"
    "return M\n";

static const char *reg_lua = "local R = {items = {}}\n"
                             "function R.add(x) R.items[#R.items + 1] = x end\n"
                             "return R\n";

static void test_isolation(void)
{
    write_file("reg.lua", reg_lua);
    write_file("leak.lua", leak_lua);
    hd_fnrt *rt = load_ok(NULL);
    if (!rt) return;
    expect_ok(rt, HD_FN_QUERY, "leak:probe", NULL, "[]");
    /* Each attempt fails or changes only the call that made it; some (the
     * call's own globals, module-level locals) are allowed to succeed. */
    outcome o = call(rt, HD_FN_QUERY, "leak:poison", "{}", NULL, false, NULL);
    if (o.rc) fprintf(stderr, "leak:poison: %s\n", o.err.message);
    CHECK(o.rc == 0);
    outcome_free(&o);
    expect_ok(rt, HD_FN_QUERY, "leak:probe", NULL, "[]");
    /* The same from a mutation, and from the admin. */
    o = call(rt, HD_FN_MUTATION, "leak:poisonMutation", "{}", NULL, true, NULL);
    CHECK(o.rc == 0);
    outcome_free(&o);
    expect_ok(rt, HD_FN_QUERY, "leak:probe", NULL, "[]");
    /* A module-level local changed by one call is back for the next. */
    expect_ok(rt, HD_FN_QUERY, "leak:count", NULL, "1");
    expect_ok(rt, HD_FN_QUERY, "leak:count", NULL, "1");
    /* Module state reads as before. */
    expect_ok(rt, HD_FN_QUERY, "leak:read", NULL,
              "{\"big\":{\"$integer\":\"BQAAAAAAAAA=\"},\"const\":{\"a\":1,\"nested\":{\"b\":2}},"
              "\"first\":1,\"joined\":\"1+2+3\","
              "\"keys\":\"a,nested\",\"list\":[1,2,3],\"n\":3,\"one\":1,\"status\":{\"members\":"
              "[{\"type\":\"literal\",\"value\":\"a\"},{\"type\":\"literal\",\"value\":\"b\"}],"
              "\"type\":\"union\"},\"sum\":6,\"unpacked\":3}");
    /* Writing to it says why it cannot. */
    expect_fail(rt, HD_FN_MUTATION, "leak:writeState", NULL, HERALD_EFUNCTION, "read-only");
    /* The random generator is shared: no call may seed it for the others. */
    expect_fail(rt, HD_FN_QUERY, "leak:seed", NULL, HERALD_EFUNCTION, "randomseed");
    hd__fnrt_free(rt);
    remove_file("leak.lua");
    remove_file("reg.lua");
}

/*
 * A FunctionError tells a caller who is not the admin the error's message,
 * without the file and line inside the app, unless the server runs --dev.
 */
static const char *errors_lua =
    "local M = {}\n"
    "local function helper() error('from a helper', 2) end\n"
    "M.boom = herald.mutation{handler = function() error('boom') end}\n"
    "M.helper = herald.query{handler = function() helper() end}\n"
    "M.runtime = herald.query{handler = function() local t = nil return t.x end}\n"
    "M.wrapped = herald.query{handler = function()\n"
    "  local _, e = pcall(function() error('inner') end)\n"
    "  error('wrapped: ' .. e)\n"
    "end}\n"
    "M.nested = herald.mutation{handler = function(ctx) ctx:runMutation('errors:boom', {}) end}\n"
    "M.structured = herald.query{handler = function()\n"
    "  herald.error{code = 'X', message = 'functions/errors.lua:1: kept as written'}\n"
    "end}\n"
    "return M\n";

static void expect_message(hd_fnrt *rt, hd_fn_kind kind, const char *path, bool admin,
                           const char *want)
{
    outcome o = call(rt, kind, path, "{}", NULL, admin, NULL);
    if (o.rc != HERALD_EFUNCTION || strcmp(o.err.message, want)) {
        fprintf(stderr, "%s (%s): got %d `%s`, expected `%s`\n", path, admin ? "admin" : "public",
                o.rc, o.err.message, want);
        CHECK(0);
    }
    outcome_free(&o);
}

static void test_error_locations(void)
{
    write_file("errors.lua", errors_lua);
    hd_fnrt *rt = load_ok(NULL);
    if (!rt) return;
    expect_message(rt, HD_FN_MUTATION, "errors:boom", false, "boom");
    expect_message(rt, HD_FN_MUTATION, "errors:boom", true, "functions/errors.lua:3: boom");
    expect_message(rt, HD_FN_QUERY, "errors:helper", false, "from a helper");
    expect_message(rt, HD_FN_QUERY, "errors:helper", true, "functions/errors.lua:4: from a helper");
    expect_message(rt, HD_FN_QUERY, "errors:runtime", false,
                   "attempt to index a nil value (local 't')");
    expect_message(rt, HD_FN_QUERY, "errors:wrapped", false, "wrapped: inner");
    expect_message(rt, HD_FN_MUTATION, "errors:nested", false, "boom");
    /* herald.error{...} is the app's own message, sent as written. */
    expect_message(rt, HD_FN_QUERY, "errors:structured", false,
                   "functions/errors.lua:1: kept as written");
    hd__fnrt_free(rt);
    /* --dev: every caller sees where. */
    hd_fn_limits dev = {.dev = true};
    rt = load_ok(&dev);
    if (rt)
        expect_message(rt, HD_FN_MUTATION, "errors:boom", false, "functions/errors.lua:3: boom");
    hd__fnrt_free(rt);
    remove_file("errors.lua");
}

static void test_load_errors(void)
{
    herald_error err = {0};
    write_file("broken.lua",
               "local M = {}\nM.x = herald.query{handler = function() end\nreturn M\n");
    hd_fnrt *rt = load(NULL, &err);
    CHECK(rt == NULL && strstr(err.message, "functions/broken.lua:3:"));
    write_file("broken.lua", "error('top level fails')\n");
    rt = load(NULL, &err);
    CHECK(rt == NULL && strstr(err.message, "functions/broken.lua:1: top level fails"));
    write_file("broken.lua", "return {x = herald.query{args = {a = v.id('nosuchtable')}, handler "
                             "= function() end}}\n");
    rt = load(NULL, &err);
    CHECK(rt == NULL && strstr(err.message, "nosuchtable") && strstr(err.message, "broken:x"));
    write_file("broken.lua", "return {x = herald.query{args = {a = v.literal('a\\0b')}, handler "
                             "= function() end}}\n");
    rt = load(NULL, &err);
    CHECK(rt == NULL && strstr(err.message, "NUL"));
    write_file("broken.lua", "return {x = herald.query{args = {a = v.literal(print)}, handler "
                             "= function() end}}\n");
    rt = load(NULL, &err);
    /* The message names the place once (it was written over its own buffer). */
    CHECK(rt == NULL && strstr(err.message, "broken:x: args") &&
          strstr(strstr(err.message, "broken:x: args") + 1, "broken:x: args") == NULL);
    write_file("broken.lua", "return {x = herald.query{args = {a = print}, handler = function() "
                             "end}}\n");
    rt = load(NULL, &err);
    CHECK(rt == NULL && strstr(err.message, "functions/broken.lua:1: args.a must be a validator"));
    /* A coroutine kept by a module would carry one call's state into the next. */
    write_file("broken.lua", "local co = coroutine.wrap(function() coroutine.yield(1) end)\n"
                             "return {x = herald.query{handler = function() return co() end}}\n");
    rt = load(NULL, &err);
    CHECK(rt == NULL && strstr(err.message, "functions/broken.lua: a coroutine"));
    write_file("broken.lua", "while true do end\n");
    rt = load(NULL, &err);
    CHECK(rt == NULL && strstr(err.message, "instruction limit"));
    remove_file("broken.lua");
    write_file("lib.lua", "return {double = function(x) return 2 * x end}\n");
    write_file("user.lua", "local lib = require('lib')\nreturn {d = herald.query{args = {x = "
                           "v.number()}, handler = function(_, a) return lib.double(a.x) end}}\n");
    rt = load(NULL, &err);
    CHECK(rt != NULL);
    if (rt) expect_ok(rt, HD_FN_QUERY, "user:d", "{\"x\":21}", "42");
    hd__fnrt_free(rt);
    remove_file("lib.lua");
    remove_file("user.lua");
    char norm[64];
    CHECK_OK(hd__fn_path_normalize("videos.js:getJobById", norm, sizeof norm, &err));
    CHECK(!strcmp(norm, "videos:getJobById"));
    CHECK_OK(hd__fn_path_normalize("videos", norm, sizeof norm, &err));
    CHECK(!strcmp(norm, "videos:default"));
    CHECK(hd__fn_path_normalize(":x", norm, sizeof norm, &err) == HERALD_EINVAL);
    CHECK(hd__fn_path_normalize("a:b:c", norm, sizeof norm, &err) == HERALD_EINVAL);
}

static void make_dir(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/functions/%s", app_dir, name);
    CHECK(mkdir(path, 0700) == 0);
}

static void remove_tree(const char *name)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/functions/%s'", app_dir, name);
    CHECK(system(cmd) == 0);
}

/* Modules in folders, called as Convex names them: folder/file:fn, .js, default exports. */
static void test_nested_modules(void)
{
    make_dir("folder");
    make_dir("folder/deep");
    write_file("folder/file.lua",
               "return {get = herald.query{handler = function() return 'nested' end},\n"
               "        default = herald.query{handler = function() return 'the default' end}}\n");
    write_file("folder/lib.lua", "return {double = function(x) return 2 * x end}\n");
    write_file("folder/deep/one.lua",
               "local a, b = require('folder.lib'), require('folder/lib')\n"
               "return herald.query{args = {x = v.number()}, handler = function(ctx, args)\n"
               "  if a ~= b then error('two copies of one module') end\n"
               "  return a.double(args.x) + ctx:runQuery('folder/file.js:get', {}):len() end}\n");
    write_file("folder/fails.lua",
               "return {boom = herald.query{handler = function()\n  error('boom') end}}\n");
    /* Hidden folders are not read, symbolic links to folders are not followed. */
    make_dir(".hidden");
    write_file(".hidden/broken.lua", "this is not lua\n");
    char target[600], link[600];
    snprintf(target, sizeof target, "%s/functions/folder", app_dir);
    snprintf(link, sizeof link, "%s/functions/linked", app_dir);
    CHECK(symlink(target, link) == 0);
    hd_fnrt *rt = load_ok(NULL);
    if (rt) {
        expect_ok(rt, HD_FN_QUERY, "folder/file:get", NULL, "\"nested\"");
        expect_ok(rt, HD_FN_QUERY, "folder/file.js:get", NULL, "\"nested\"");
        expect_ok(rt, HD_FN_QUERY, "folder/file", NULL, "\"the default\"");
        expect_ok(rt, HD_FN_QUERY, "folder/file:default", NULL, "\"the default\"");
        expect_ok(rt, HD_FN_QUERY, "folder/deep/one", "{\"x\":20}", "46");
        expect_ok(rt, HD_FN_QUERY, "folder/deep/one.js:default", "{\"x\":1}", "8");
        expect_fail(rt, HD_FN_QUERY, "linked/file:get", NULL, HERALD_ENOTFOUND, NULL);
        expect_fail(rt, HD_FN_QUERY, "folder:get", NULL, HERALD_ENOTFOUND, NULL);
        /* Callers who are not the admin do not see where, in folders too. */
        expect_message(rt, HD_FN_QUERY, "folder/fails:boom", false, "boom");
        expect_message(rt, HD_FN_QUERY, "folder/fails:boom", true,
                       "functions/folder/fails.lua:2: boom");
        bool found = false;
        for (size_t i = 0; i < hd__fnrt_count(rt); i++)
            found = found || !strcmp(hd__fnrt_path(rt, i), "folder/deep/one:default");
        CHECK(found);
    }
    hd__fnrt_free(rt);
    unlink(link);
    remove_tree(".hidden");

    /* Folder names follow module names; depth is bounded. */
    herald_error err = {0};
    make_dir("bad-name");
    write_file("bad-name/x.lua", "return {}\n");
    rt = load(NULL, &err);
    CHECK(rt == NULL && strstr(err.message, "functions/bad-name") &&
          strstr(err.message, "folder names"));
    remove_tree("bad-name");
    make_dir("a");
    make_dir("a/b");
    make_dir("a/b/c");
    make_dir("a/b/c/d");
    make_dir("a/b/c/d/e");
    make_dir("a/b/c/d/e/f");
    make_dir("a/b/c/d/e/f/g");
    write_file("a/b/c/d/e/f/g/x.lua",
               "return {q = herald.query{handler = function() return 7 end}}\n");
    rt = load_ok(NULL);
    if (rt) expect_ok(rt, HD_FN_QUERY, "a/b/c/d/e/f/g/x:q", NULL, "7");
    hd__fnrt_free(rt);
    make_dir("a/b/c/d/e/f/g/h");
    rt = load(NULL, &err);
    CHECK(rt == NULL && err.code == HERALD_ELIMIT && strstr(err.message, "folders deep"));
    remove_tree("a");
    remove_tree("folder");
    char norm[64];
    CHECK_OK(hd__fn_path_normalize("folder/file.js:fn", norm, sizeof norm, &err));
    CHECK(!strcmp(norm, "folder/file:fn"));
    CHECK_OK(hd__fn_path_normalize("folder/file", norm, sizeof norm, &err));
    CHECK(!strcmp(norm, "folder/file:default"));
    CHECK_OK(hd__fn_path_normalize("folder/file.js", norm, sizeof norm, &err));
    CHECK(!strcmp(norm, "folder/file:default"));
}

int main(void)
{
    const char *base = mkdtemp(dir_template);
    if (!base) return 1;
    snprintf(data_dir, sizeof data_dir, "%s/data", base);
    snprintf(app_dir, sizeof app_dir, "%s/app", base);
    char fdir[400];
    snprintf(fdir, sizeof fdir, "%s/functions", app_dir);
    mkdir(app_dir, 0700);
    mkdir(fdir, 0700);
    herald_error err = {0};
    herald_store_options so = {.no_sync = true};
    CHECK_OK(herald_store_open(data_dir, &so, &store, &err));
    herald_schema *schema = NULL;
    CHECK_OK(herald_schema_from_json(schema_json, strlen(schema_json), "test", &schema, &err));
    CHECK_OK(herald_store_set_schema(store, schema, &err));
    write_file("feeds.lua", feeds_lua);
    test_basics();
    test_hostile();
    test_isolation();
    test_error_locations();
    test_load_errors();
    test_nested_modules();
    herald_store_close(store);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
    CHECK_DONE();
}
