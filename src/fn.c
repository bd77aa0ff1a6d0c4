/*
 * The server-function runtime: bundles of Lua sources, sandboxed Lua
 * states, value conversion between Lua and herald_value, ctx.db on top of
 * the store and the query engine, and the limits that end runaway code.
 *
 * It must never let app code reach files, processes, the network, the
 * debug library or bytecode, never let a function outlive its budgets,
 * never let one call change what another call sees, and never leave C
 * memory behind when Lua unwinds with an error: C functions called from
 * Lua free what they own before raising, and values they hand to Lua are
 * parked in `scratch` while Lua code may raise.
 *
 * Isolation between calls (docs/functions.md, "The sandbox"): every call
 * gets a new table of globals whose misses read through to the shared
 * base; the libraries, `herald`, `v`, ctx's tables and, once every module
 * has loaded, everything the modules keep (their tables, and the tables
 * their module-level locals hold) are read-only views; module-level locals
 * themselves are put back after every call. A view is an empty table whose
 * metatable reads through to the original (KEY_VIEW) and refuses writes;
 * the originals are never handed to app code.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "fetch.h"
#include "fn.h"
#include "herald/query.h"
#include "jwt.h"
#include "log.h"
#include "schema_priv.h"
#include "blobs.h"
#include "cron.h"
#include "search.h"
#include "vector.h"
#include "writer.h"

#define MAX_FILES            1000
#define MAX_FILE_BYTES       ((size_t)4 * 1024 * 1024)
#define MAX_CALL_DEPTH       16
#define HOOK_EVERY           1000
#define DEFAULT_INSTRUCTIONS 50000000ULL
#define DEFAULT_MEMORY       ((size_t)64 * 1024 * 1024)
#define STATE_MEMORY_CAP     ((size_t)1024 * 1024 * 1024)
#define MAX_SCRATCH          64
#define MAX_PATH_CHARS       256
#define MAX_MODULE_DEPTH     8   /* segments of a module path: functions/a/b/.../file.lua */
#define MAX_MODULE_CHARS     192 /* "folder/file", so that module:name fits MAX_PATH_CHARS */

extern const char hd__fn_prelude[];
extern const size_t hd__fn_prelude_len;

/* Registry keys (their addresses) and the two sentinels Lua code sees. */
static char KEY_ARRAY_MT, KEY_BYTES_MT, KEY_INT64_MT, KEY_FN_MT, KEY_V_MT, KEY_ERROR_MT, KEY_LOADED,
    KEY_P;
/*
 * Isolation: KEY_TAG (in Herald's own metatables: which one it is) and
 * KEY_VIEW (in a view's metatable: the original) and KEY_VIEW_NAME (a
 * library's name, for messages) are keys inside metatables, which app code
 * cannot forge (it has no light userdata of these addresses). In the
 * registry: KEY_VIEWS maps originals to their views, KEY_ENV is a closure
 * whose one upvalue is the _ENV of every module (set to each call's
 * globals), KEY_CALL_MT the metatable of those globals, KEY_RESTORE the
 * module-level locals to put back after a call (closure, value pairs).
 */
static char KEY_TAG, KEY_VIEW, KEY_VIEW_NAME, KEY_VIEWS, KEY_ENV, KEY_CALL_MT, KEY_RESTORE;
static char SENTINEL_NULL, SENTINEL_UNSET, SENTINEL_LOADING;
/* Marks of the tables functions/crons.lua and functions/http.lua return (herald.cronJobs(),
 * herald.httpRouter()). */
static char KEY_CRONS, KEY_ROUTES;

/* ------------------------------------------------------------- bundles */

typedef struct fnfile {
    char *module; /* "videos" */
    char *name;   /* "functions/videos.lua", for messages */
    char *text;
    size_t len;
} fnfile;

struct hd_fnbundle {
    atomic_int refs;
    fnfile *files; /* sorted by module */
    size_t n;
};

static void bundle_free(hd_fnbundle *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->files[i].module);
        free(b->files[i].name);
        free(b->files[i].text);
    }
    free(b->files);
    free(b);
}

hd_fnbundle *hd__fnbundle_ref(hd_fnbundle *b)
{
    if (b) atomic_fetch_add(&b->refs, 1);
    return b;
}

void hd__fnbundle_unref(hd_fnbundle *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) bundle_free(b);
}

size_t hd__fnbundle_count(const hd_fnbundle *b)
{
    return b ? b->n : 0;
}

static int file_cmp(const void *a, const void *b)
{
    return strcmp(((const fnfile *)a)->module, ((const fnfile *)b)->module);
}

static bool module_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static int read_file(const char *path, char **text, size_t *len, herald_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return herald_fail(err, HERALD_ENOTFOUND, "cannot read %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > MAX_FILE_BYTES + 1) cap = MAX_FILE_BYTES + 1;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                rc = herald_fail(err, HERALD_ENOMEM, "out of memory reading %s", path);
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > MAX_FILE_BYTES) {
            rc = herald_fail(err, HERALD_ELIMIT, "%s is larger than 4 MiB", path);
            break;
        }
        if (got == 0) break;
    }
    if (!rc && ferror(f)) rc = herald_fail(err, HERALD_EIO, "cannot read %s", path);
    fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = 0;
    *text = buf;
    *len = n;
    return 0;
}

/*
 * Reads the modules of `dir` (the functions folder, or a folder `depth`
 * levels below it whose module names start with `prefix`, "folder/").
 * Hidden entries are skipped; folders are entered only when they are real
 * folders (lstat), so a symbolic link can never make a cycle or lead out of
 * the app; a module file may be a link to a regular file, as before folders.
 */
static int read_folder(hd_fnbundle *b, size_t *cap, const char *dir, const char *prefix, int depth,
                       herald_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return herald_fail(err, HERALD_EIO, "cannot read functions/%s: %s", prefix,
                           strerror(errno));
    int rc = 0;
    struct dirent *e;
    size_t plen = strlen(prefix);
    while (!rc && (e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (e->d_name[0] == '.') continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (!module_name_ok(e->d_name, nl)) {
                rc = herald_fail(err, HERALD_EINVAL,
                                 "functions/%s%s: folder names are letters, digits and _ (at most "
                                 "64)",
                                 prefix, e->d_name);
                break;
            }
            if (depth + 1 >= MAX_MODULE_DEPTH) {
                rc = herald_fail(err, HERALD_ELIMIT,
                                 "functions/%s%s: modules are at most %d folders deep", prefix,
                                 e->d_name, MAX_MODULE_DEPTH - 1);
                break;
            }
            char sub[MAX_MODULE_CHARS + 258]; /* prefix and a name (at most 255) */
            if (plen + nl + 1 > MAX_MODULE_CHARS) {
                rc = herald_fail(err, HERALD_ELIMIT, "functions/%s%s: the path is too long", prefix,
                                 e->d_name);
                break;
            }
            snprintf(sub, sizeof sub, "%s%s/", prefix, e->d_name);
            rc = read_folder(b, cap, path, sub, depth + 1, err);
            continue;
        }
        if (nl < 5 || strcmp(e->d_name + nl - 4, ".lua") != 0) continue;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (!module_name_ok(e->d_name, nl - 4)) {
            rc = herald_fail(err, HERALD_EINVAL,
                             "functions/%s%s: module names are letters, digits and _ (at most 64)",
                             prefix, e->d_name);
            break;
        }
        if (plen + nl - 4 > MAX_MODULE_CHARS) {
            rc = herald_fail(err, HERALD_ELIMIT, "functions/%s%s: the path is too long", prefix,
                             e->d_name);
            break;
        }
        if (b->n >= MAX_FILES) {
            rc = herald_fail(err, HERALD_ELIMIT, "more than %d function files", MAX_FILES);
            break;
        }
        if (b->n == *cap) {
            size_t ncap = *cap ? *cap * 2 : 16;
            fnfile *nf = realloc(b->files, ncap * sizeof *nf);
            if (!nf) {
                rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
                break;
            }
            b->files = nf;
            *cap = ncap;
        }
        fnfile *f = &b->files[b->n];
        memset(f, 0, sizeof *f);
        size_t mlen = plen + nl - 4;
        f->module = malloc(mlen + 1);
        if (f->module) snprintf(f->module, mlen + 1, "%s%.*s", prefix, (int)(nl - 4), e->d_name);
        size_t namelen = plen + nl + 11;
        f->name = malloc(namelen);
        if (f->name) snprintf(f->name, namelen, "functions/%s%s", prefix, e->d_name);
        b->n++;
        if (!f->module || !f->name) {
            rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
            break;
        }
        rc = read_file(path, &f->text, &f->len, err);
    }
    closedir(d);
    return rc;
}

int hd__fnbundle_read(const char *app_dir, hd_fnbundle **out, herald_error *err)
{
    *out = NULL;
    hd_fnbundle *b = calloc(1, sizeof *b);
    if (!b) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    atomic_init(&b->refs, 1);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/functions", app_dir ? app_dir : ".");
    struct stat st;
    if (!app_dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        *out = b; /* no functions folder: an app of raw queries only */
        return 0;
    }
    size_t cap = 0;
    int rc = read_folder(b, &cap, dir, "", 0, err);
    if (rc) {
        bundle_free(b);
        return rc;
    }
    if (b->n > 1) qsort(b->files, b->n, sizeof *b->files, file_cmp);
    *out = b;
    return 0;
}

static const fnfile *bundle_find(const hd_fnbundle *b, const char *module)
{
    for (size_t i = 0; i < b->n; i++)
        if (!strcmp(b->files[i].module, module)) return &b->files[i];
    return NULL;
}

/* ------------------------------------------------------------- runtime */

typedef struct fndef {
    char *path;
    hd_fn_kind kind;
    bool internal;
    herald_validator *args;    /* NULL: any arguments */
    herald_validator *returns; /* NULL: not checked */
    int handler;               /* registry reference */
} fndef;

/* The call in progress: nested runQuery/runMutation calls share it. */
typedef struct call_state {
    const char *path; /* of the innermost function, for log lines */
    herald_txn *txn;
    herald_read_set *rs;
    const herald_value *identity;
    bool admin;    /* called with the admin key */
    bool writable; /* the top-level function is a mutation */
    double now_ms;
    int depth;
    const char *journal; /* hd_fncall.journal: the first page's fixed end, or NULL */
    bool paginated;      /* the run's first paginate() has run */
    char *journal_out;   /* its end cursor (malloc'd), kept when want_journal */
    bool want_journal;
    /* An action (hd__fn_action_*): no transaction of its own; reads take a snapshot
     * of `store` each (txn is set only while one runs), writes go out as requests. */
    bool action;
    herald_store *store;
} call_state;

struct hd_fnrt {
    lua_State *L;
    hd_fnbundle *bundle;
    const herald_schema *schema;
    fndef *defs; /* sorted by path */
    size_t ndefs;
    hd_fn_limits limits;
    size_t mem_used, mem_limit;
    bool mem_limited;
    size_t refused; /* size of a refused allocation not granted since, or 0 */
    uint64_t instructions;
    bool instr_tripped, mem_tripped;
    double yield_at; /* the thread's CPU time to yield at (seconds); 0: the call never yields */
    unsigned yield_ticks;
    bool yield_tripped;
    call_state *cur;
    herald_value *scratch[MAX_SCRATCH];
    size_t nscratch;
    int *restore_slots; /* upvalue number of each KEY_RESTORE pair */
    size_t nrestore;
    bool env_unused; /* the globals of the last call are as new: the next may take them */
    /* The action running here (hd__fn_action_*), between its steps. */
    lua_State *co;        /* its coroutine, or NULL: none */
    int co_ref;           /* the registry's reference that keeps it */
    const fndef *act_def; /* its definition */
    call_state act;       /* its call state (rt->cur while a step runs) */
    herald_value act_identity;
    double act_deadline;               /* CLOCK_MONOTONIC seconds it must end by */
    double act_seconds;                /* its wall-clock limit */
    bool time_tripped;                 /* it ran past act_deadline */
    hd_act_step *step;                 /* where a primitive that stops it says what for */
    struct hd_fetch_response *fetched; /* the answer it resumes with, until pushed */
    struct hd_wreq *written;
    /* crons.lua and http.lua (hd__fnrt_crons, hd__fnrt_route) */
    hd_fncron *crons;
    size_t ncrons;
    hd_fnroute *routes;
    size_t nroutes;
};

static hd_fnrt *rt_of(lua_State *L)
{
    return *(hd_fnrt **)lua_getextraspace(L);
}

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    hd_fnrt *rt = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        rt->mem_used -= old;
        return NULL;
    }
    if (nsize > old && rt->mem_limited && rt->mem_used - old + nsize > rt->mem_limit) {
        /* Lua may collect garbage and ask again for the same size; if that
         * never succeeds, the call ran out of its budget (budget_tripped()). */
        rt->refused = nsize;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    if (nsize == rt->refused) rt->refused = 0;
    rt->mem_used = rt->mem_used - old + nsize;
    return p;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    hd_fnrt *rt = rt_of(L);
    rt->instructions += (uint64_t)lua_gethookcount(L);
    if (rt->instructions > rt->limits.instructions) {
        rt->instr_tripped = true;
        /* From now on every instruction fails, so a pcall in app code cannot
         * swallow the limit and go on. */
        lua_sethook(L, hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "instruction limit of %llu exceeded",
                   (unsigned long long)rt->limits.instructions);
    }
    /* Clocks are system calls: read every fourth hook (~4,000 instructions). */
    if ((++rt->yield_ticks & 3) != 0) return;
    if (rt->act_deadline > 0 && !rt->time_tripped && mono_now() >= rt->act_deadline) {
        /* An action's wall-clock limit. */
        rt->time_tripped = true;
        lua_sethook(L, hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "the action ran out of time");
    }
    if (rt->yield_at > 0 && !rt->yield_tripped) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        if ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 >= rt->yield_at) {
            rt->yield_tripped = true;
            lua_sethook(L, hook, LUA_MASKCOUNT, 1);
            luaL_error(L, "the query takes long: it goes to an evaluator thread");
        }
    }
}

static void budget_start(hd_fnrt *rt)
{
    rt->instructions = 0;
    rt->instr_tripped = rt->mem_tripped = rt->yield_tripped = rt->time_tripped = false;
    rt->refused = 0;
    lua_sethook(rt->L, hook, LUA_MASKCOUNT, HOOK_EVERY);
    size_t limit = rt->mem_used + rt->limits.memory;
    rt->mem_limit = limit > STATE_MEMORY_CAP ? STATE_MEMORY_CAP : limit;
    rt->mem_limited = true;
}

static void budget_end(hd_fnrt *rt)
{
    rt->mem_tripped = rt->refused != 0;
    rt->mem_limited = false;
    lua_sethook(rt->L, NULL, 0, 0);
}

/* Parks a C value while Lua code may raise; freed at the end of the call. */
static herald_value *scratch_new(lua_State *L)
{
    hd_fnrt *rt = rt_of(L);
    herald_value *v = rt->nscratch < MAX_SCRATCH ? malloc(sizeof *v) : NULL;
    if (!v) {
        luaL_error(L, "out of memory (C values)");
        return NULL;
    }
    *v = herald_undefined();
    rt->scratch[rt->nscratch++] = v;
    return v;
}

static void scratch_drop(lua_State *L, herald_value *v)
{
    hd_fnrt *rt = rt_of(L);
    for (size_t i = rt->nscratch; i-- > 0;)
        if (rt->scratch[i] == v) {
            herald_value_free(v);
            free(v);
            rt->scratch[i] = rt->scratch[--rt->nscratch];
            return;
        }
}

static void scratch_clear(hd_fnrt *rt)
{
    while (rt->nscratch) {
        herald_value *v = rt->scratch[--rt->nscratch];
        herald_value_free(v);
        free(v);
    }
}

/* Raises a Herald error object {code, message} that tostring() prints. */
static int raise_code(lua_State *L, int code, const char *message)
{
    lua_createtable(L, 0, 2);
    lua_pushstring(L, herald_errcode_name(code));
    lua_setfield(L, -2, "code");
    lua_pushstring(L, message && message[0] ? message : herald_strerror(code));
    lua_setfield(L, -2, "message");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ERROR_MT);
    lua_setmetatable(L, -2);
    return lua_error(L);
}

static int raise_err(lua_State *L, const herald_error *e)
{
    char msg[sizeof e->message];
    memcpy(msg, e->message, sizeof msg);
    return raise_code(L, e->code ? e->code : HERALD_EINVAL, msg);
}

/* ---------------------------------------------- values: herald -> Lua */

/*
 * Which of Herald's own metatables (its registry key) the value at `idx`
 * has, looking through a read-only view to its original; NULL for none.
 */
static const void *herald_tag(lua_State *L, int idx)
{
    int top = lua_gettop(L);
    const void *tag = NULL;
    if (lua_getmetatable(L, idx)) {
        if (lua_rawgetp(L, -1, &KEY_VIEW) == LUA_TNIL)
            lua_pop(L, 1);
        else if (!lua_getmetatable(L, -1))
            goto done;
        lua_rawgetp(L, -1, &KEY_TAG);
        tag = lua_touserdata(L, -1);
    }
done:
    lua_settop(L, top);
    return tag;
}

static bool has_mt(lua_State *L, int idx, const void *key)
{
    return herald_tag(L, idx) == key;
}

/* If the table at absolute index `idx` is a read-only view, pushes its original. */
static bool push_original(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx)) return false;
    if (lua_rawgetp(L, -1, &KEY_VIEW) == LUA_TNIL) {
        lua_pop(L, 2);
        return false;
    }
    lua_remove(L, -2);
    return true;
}

static bool is_view(lua_State *L, int idx)
{
    if (!push_original(L, idx)) return false;
    lua_pop(L, 1);
    return true;
}

static void push_value(lua_State *L, const herald_value *v, int depth)
{
    if (depth > HERALD_MAX_DEPTH + 2 || !lua_checkstack(L, 4)) luaL_error(L, "value too deep");
    switch (v->type) {
    case HERALD_UNDEFINED:
        lua_pushnil(L);
        return;
    case HERALD_NULL:
        lua_pushlightuserdata(L, &SENTINEL_NULL);
        return;
    case HERALD_INT64:
        /* Like a BigInt in Convex's JavaScript: its own type, so it goes back as an int64. */
        lua_createtable(L, 0, 1);
        lua_pushinteger(L, v->u.i);
        lua_setfield(L, -2, "value");
        lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_INT64_MT);
        lua_setmetatable(L, -2);
        return;
    case HERALD_FLOAT64: {
        /* Whole numbers read as Lua integers ("42", not "42.0"); they go back as float64. */
        double f = v->u.f;
        if (f == floor(f) && fabs(f) <= 9007199254740992.0 && !(f == 0 && signbit(f)))
            lua_pushinteger(L, (lua_Integer)f);
        else
            lua_pushnumber(L, f);
        return;
    }
    case HERALD_BOOLEAN:
        lua_pushboolean(L, v->u.b);
        return;
    case HERALD_STRING:
        lua_pushlstring(L, v->u.s.ptr, v->u.s.len);
        return;
    case HERALD_BYTES:
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, v->u.s.ptr, v->u.s.len);
        lua_setfield(L, -2, "data");
        lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_BYTES_MT);
        lua_setmetatable(L, -2);
        return;
    case HERALD_ARRAY:
        lua_createtable(L, (int)v->u.arr.len, 0);
        for (size_t i = 0; i < v->u.arr.len; i++) {
            push_value(L, &v->u.arr.items[i], depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ARRAY_MT);
        lua_setmetatable(L, -2);
        return;
    case HERALD_OBJECT:
        lua_createtable(L, 0, (int)v->u.obj.len);
        for (size_t i = 0; i < v->u.obj.len; i++) {
            lua_pushlstring(L, v->u.obj.fields[i].key, v->u.obj.fields[i].key_len);
            push_value(L, &v->u.obj.fields[i].val, depth + 1);
            lua_rawset(L, -3);
        }
        return;
    }
    lua_pushnil(L);
}

/* Pushes a value we own and frees it, also if Lua raises while pushing. A
 * null result reads as nil, so that `if not doc then` works as in JavaScript. */
static void push_owned(lua_State *L, herald_value *v)
{
    if (v->type == HERALD_NULL) {
        lua_pushnil(L);
        return;
    }
    herald_value *park = scratch_new(L);
    *park = *v;
    *v = herald_undefined();
    push_value(L, park, 0);
    scratch_drop(L, park);
}

/* ---------------------------------------------- values: Lua -> herald */

/*
 * The validator for a field or element of `h`, to guide conversion: Lua
 * has one table type for arrays and objects and integers where JSON has
 * floats, so the schema says which one is meant.
 */
static const herald_validator *hint_member(const herald_validator *h, const char *key)
{
    if (!h) return NULL;
    switch (h->kind) {
    case HERALD_V_OBJECT: {
        size_t lo = 0, hi = h->nfields;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            int c = strcmp(h->fields[mid].name, key);
            if (c == 0) return h->fields[mid].v;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return NULL;
    }
    case HERALD_V_RECORD:
        return h->items;
    case HERALD_V_UNION:
        for (size_t i = 0; i < h->nmembers; i++) {
            const herald_validator *m = hint_member(h->members[i], key);
            if (m) return m;
        }
        return NULL;
    default:
        return NULL;
    }
}

static const herald_validator *hint_items(const herald_validator *h)
{
    if (!h) return NULL;
    if (h->kind == HERALD_V_ARRAY) return h->items;
    if (h->kind == HERALD_V_UNION)
        for (size_t i = 0; i < h->nmembers; i++)
            if (h->members[i]->kind == HERALD_V_ARRAY) return h->members[i]->items;
    return NULL;
}

static bool hint_is(const herald_validator *h, herald_vkind kind)
{
    if (!h) return false;
    if (h->kind == kind) return true;
    if (h->kind == HERALD_V_UNION)
        for (size_t i = 0; i < h->nmembers; i++)
            if (h->members[i]->kind == kind) return true;
    return false;
}

typedef struct conv {
    herald_error *err;
    bool allow_unset; /* herald.unset is allowed at the top level of a patch */
} conv;

static int to_value(lua_State *L, int idx, const herald_validator *hint, herald_value *out,
                    int depth, conv *cv);

static int plain_table_to_value(lua_State *L, int idx, const herald_validator *hint,
                                herald_value *out, int depth, conv *cv)
{
    int rc = 0;
    const void *tag = herald_tag(L, idx);
    if (tag == &KEY_BYTES_MT) {
        lua_getfield(L, idx, "data");
        size_t n;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
        rc = s ? herald_bytes(out, s, n)
               : herald_fail(cv->err, HERALD_EINVAL, "a herald.bytes value lost its data");
        lua_pop(L, 1);
        return rc;
    }
    if (tag == &KEY_INT64_MT) {
        lua_getfield(L, idx, "value");
        int isint = 0;
        lua_Integer i = lua_tointegerx(L, -1, &isint);
        lua_pop(L, 1);
        if (!isint)
            return herald_fail(cv->err, HERALD_EINVAL, "a herald.int64 value lost its value");
        *out = herald_int64(i);
        return 0;
    }
    size_t n = lua_rawlen(L, idx);
    bool marked = tag == &KEY_ARRAY_MT;
    bool as_array = marked || n > 0;
    if (!as_array) {
        /* An empty table: an array where the schema wants one, else an object. */
        lua_pushnil(L);
        bool empty = lua_next(L, idx) == 0;
        if (!empty) lua_pop(L, 2);
        as_array = empty && hint_is(hint, HERALD_V_ARRAY) && !hint_is(hint, HERALD_V_OBJECT) &&
                   !hint_is(hint, HERALD_V_RECORD);
    }
    if (as_array) {
        /* Exactly the keys 1..n, nothing else. */
        size_t count = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            int isint = 0;
            lua_Integer k = lua_tointegerx(L, -2, &isint);
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TNUMBER || !isint || k < 1 || (size_t)k > n) {
                lua_pop(L, 1);
                return herald_fail(cv->err, HERALD_EINVAL,
                                   "a table with both list items and named fields cannot be "
                                   "stored (use one or the other)");
            }
            count++;
        }
        if (count != n)
            return herald_fail(cv->err, HERALD_EINVAL,
                               "a list with holes (nil items) cannot be stored");
        if (n > HERALD_MAX_ARRAY)
            return herald_fail(cv->err, HERALD_ELIMIT, "an array longer than %d items",
                               HERALD_MAX_ARRAY);
        herald_array_init(out);
        const herald_validator *item = hint_items(hint);
        for (size_t i = 1; i <= n && !rc; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i);
            herald_value x;
            rc = to_value(L, lua_gettop(L), item, &x, depth + 1, cv);
            lua_pop(L, 1);
            if (!rc) rc = herald_array_push(out, x);
        }
        if (rc) herald_value_free(out);
        return rc;
    }
    herald_object_init(out);
    bool allow_unset = cv->allow_unset;
    cv->allow_unset = false;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            herald_value_free(out);
            return herald_fail(cv->err, HERALD_EINVAL,
                               "a table with both list items and named fields cannot be stored");
        }
        size_t kl;
        const char *key = lua_tolstring(L, -2, &kl);
        if (lua_type(L, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == &SENTINEL_UNSET) {
            if (!allow_unset) {
                lua_pop(L, 2);
                herald_value_free(out);
                return herald_fail(cv->err, HERALD_EINVAL,
                                   "herald.unset is only allowed as a field value of a patch");
            }
            rc = herald_object_set(out, key, kl, herald_undefined());
            lua_pop(L, 1);
            if (rc) break;
            continue;
        }
        if (strlen(key) != kl) {
            lua_pop(L, 2);
            herald_value_free(out);
            return herald_fail(cv->err, HERALD_EINVAL, "a field name contains a NUL byte");
        }
        herald_value x;
        rc = to_value(L, lua_gettop(L), hint_member(hint, key), &x, depth + 1, cv);
        if (!rc) rc = herald_object_set(out, key, kl, x);
        lua_pop(L, 1);
        if (rc) {
            lua_pop(L, 1);
            break;
        }
    }
    if (rc) herald_value_free(out);
    return rc;
}

/* A view is converted as its original (whose tables are views in turn). */
static int table_to_value(lua_State *L, int idx, const herald_validator *hint, herald_value *out,
                          int depth, conv *cv)
{
    if (!push_original(L, idx)) return plain_table_to_value(L, idx, hint, out, depth, cv);
    int rc = plain_table_to_value(L, lua_gettop(L), hint, out, depth, cv);
    lua_pop(L, 1);
    return rc;
}

static int to_value(lua_State *L, int idx, const herald_validator *hint, herald_value *out,
                    int depth, conv *cv)
{
    *out = herald_undefined();
    if (depth > HERALD_MAX_DEPTH)
        return herald_fail(cv->err, HERALD_ELIMIT, "value nested deeper than %d levels",
                           HERALD_MAX_DEPTH);
    if (!lua_checkstack(L, 6)) return herald_fail(cv->err, HERALD_ELIMIT, "value too deep");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
        return 0;
    case LUA_TBOOLEAN:
        *out = herald_bool(lua_toboolean(L, idx));
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            lua_Integer i = lua_tointeger(L, idx);
            *out = hint_is(hint, HERALD_V_INT64) && !hint_is(hint, HERALD_V_NUMBER)
                       ? herald_int64(i)
                       : herald_float64((double)i);
        } else {
            *out = herald_float64(lua_tonumber(L, idx));
        }
        return 0;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return herald_string(out, s, n);
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &SENTINEL_NULL) {
            *out = herald_null();
            return 0;
        }
        if (lua_touserdata(L, idx) == &SENTINEL_UNSET)
            return herald_fail(cv->err, HERALD_EINVAL,
                               "herald.unset is only allowed as a field value of a patch");
        break;
    case LUA_TTABLE:
        return table_to_value(L, lua_absindex(L, idx), hint, out, depth, cv);
    default:
        break;
    }
    return herald_fail(cv->err, HERALD_EINVAL, "a %s cannot be stored or returned",
                       lua_typename(L, lua_type(L, idx)));
}

/* Converts argument `idx` into a parked value; raises on failure. */
static herald_value *arg_value(lua_State *L, int idx, const herald_validator *hint, bool unset,
                               const char *what)
{
    herald_value *park = scratch_new(L);
    herald_error e = {0};
    conv cv = {&e, unset};
    if (to_value(L, idx, hint, park, 0, &cv)) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s: %s", what, e.message);
        scratch_drop(L, park);
        raise_code(L, e.code, msg);
    }
    return park;
}

/* ------------------------------------------------------ the C primitives */

static call_state *need_call(lua_State *L, bool write, const char *what)
{
    call_state *cs = rt_of(L)->cur;
    if (!cs) luaL_error(L, "%s is only available while a function runs", what);
    if (write && !cs->writable) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s is only available in mutations", what);
        raise_code(L, HERALD_EACCESS, msg);
    }
    return cs;
}

static const char *id_table_cb(void *ctx, const char *id, size_t len)
{
    return strlen(id) == len ? herald_id_table(ctx, id) : NULL;
}

static int p_get(lua_State *L)
{
    call_state *cs = need_call(L, false, "ctx.db.get");
    const char *id = luaL_checkstring(L, 1);
    herald_value *doc = scratch_new(L);
    herald_error e = {0};
    int rc = herald_get(cs->txn, NULL, id, doc, cs->rs, &e);
    if (rc == HERALD_ENOTFOUND) {
        scratch_drop(L, doc);
        lua_pushnil(L);
        return 1;
    }
    if (rc) {
        scratch_drop(L, doc);
        return raise_err(L, &e);
    }
    push_value(L, doc, 0);
    scratch_drop(L, doc);
    return 1;
}

static int p_run(lua_State *L)
{
    call_state *cs = need_call(L, false, "ctx.db.query");
    hd_fnrt *rt = rt_of(L);
    herald_value *qv = arg_value(L, 1, NULL, false, "query");
    herald_error e = {0};
    herald_query *q = NULL;
    int rc = herald_query_from_value(qv, rt->schema, &q, &e);
    scratch_drop(L, qv);
    if (rc) return raise_err(L, &e);
    /*
     * The run's first paginate() is the subscription's live page: its end
     * is the journal when the page gives none, and its end is what the
     * caller keeps as the journal for the next run (docs/queries.md).
     */
    bool first_page = herald_query_paginates(q) && !cs->paginated;
    if (first_page) {
        cs->paginated = true;
        if (herald_query_set_journal(q, cs->journal)) {
            herald_query_free(q);
            return raise_code(L, HERALD_ENOMEM, "out of memory");
        }
    }
    herald_value result;
    rc = herald_query_run(q, cs->txn, NULL, &result, cs->rs, &e);
    herald_query_free(q);
    if (rc) return raise_err(L, &e);
    if (first_page && cs->want_journal) {
        const herald_value *end = herald_object_get(&result, "continueCursor");
        if (end && end->type == HERALD_STRING && end->u.s.len &&
            !(cs->journal_out = strdup(end->u.s.ptr))) {
            herald_value_free(&result);
            return raise_code(L, HERALD_ENOMEM, "out of memory");
        }
    }
    push_owned(L, &result);
    return 1;
}

static int p_search(lua_State *L)
{
    call_state *cs = need_call(L, false, "withSearchIndex");
    hd_fnrt *rt = rt_of(L);
    herald_value *spec = arg_value(L, 1, NULL, false, "search");
    herald_error e = {0};
    herald_value result;
    int rc = spec->type == HERALD_OBJECT
                 ? hd__search_run(cs->txn, rt->schema, spec, &result, cs->rs, &e)
                 : herald_fail(&e, HERALD_EINVAL, "bad search");
    scratch_drop(L, spec);
    if (rc) return raise_err(L, &e);
    push_owned(L, &result);
    return 1;
}

/* ctx.vectorSearch (vector.h): queries and mutations alike, recorded in the read set. */
static int p_vector_search(lua_State *L)
{
    call_state *cs = need_call(L, false, "ctx.vectorSearch");
    herald_value *spec = arg_value(L, 1, NULL, false, "vectorSearch");
    herald_error e = {0};
    herald_value result;
    int rc = spec->type == HERALD_OBJECT ? hd__vector_search(cs->txn, spec, &result, cs->rs, &e)
                                         : herald_fail(&e, HERALD_EINVAL, "bad vectorSearch");
    scratch_drop(L, spec);
    if (rc) return raise_err(L, &e);
    push_owned(L, &result);
    return 1;
}

static const herald_validator *table_hint(hd_fnrt *rt, const char *table)
{
    const herald_table_def *t = table ? herald_schema_table(rt->schema, table) : NULL;
    return t ? t->document : NULL;
}

/* ---- ctx.storage (docs/functions.md, "Files") ---- */

/* The `_storage` row `id` (with _id), or nil; raises on a malformed id of another table. */
static int storage_row(lua_State *L, call_state *cs, const char *id, herald_value *doc)
{
    herald_error e = {0};
    int rc = herald_get(cs->txn, "_storage", id, doc, cs->rs, &e);
    if (rc == HERALD_ENOTFOUND) return 0;
    if (rc) raise_err(L, &e);
    return 1;
}

static const char *storage_url(lua_State *L)
{
    const char *url = rt_of(L)->limits.storage_url;
    if (!url || !rt_of(L)->limits.storage_key)
        raise_code(L, HERALD_EBUSY, "file storage is served by `herald serve` only");
    return url;
}

/* ctx.storage:generateUploadUrl(): a single-use URL to POST one file to. */
static int p_upload_url(lua_State *L)
{
    need_call(L, true, "ctx.storage.generateUploadUrl");
    hd_fnrt *rt = rt_of(L);
    const char *base = storage_url(L);
    char token[HD_UPLOAD_TOKEN_CHARS + 1];
    if (hd__upload_token(rt->limits.storage_key, (double)time(NULL) + rt->limits.upload_seconds,
                         token))
        return raise_code(L, HERALD_ESTORE, "no randomness for an upload token");
    lua_pushfstring(L, "%s/api/storage/upload/%s", base, token);
    return 1;
}

/* ctx.storage:getUrl(id): the URL that serves the file, or nil when there is none. */
static int p_file_url(lua_State *L)
{
    call_state *cs = need_call(L, false, "ctx.storage.getUrl");
    const char *id = luaL_checkstring(L, 1);
    const char *base = storage_url(L);
    herald_value *doc = scratch_new(L);
    int found = storage_row(L, cs, id, doc);
    scratch_drop(L, doc);
    if (!found) {
        lua_pushnil(L);
        return 1;
    }
    char token[HD_READ_TOKEN_CHARS + 1];
    hd__read_token(rt_of(L)->limits.storage_key, id, token);
    lua_pushfstring(L, "%s/api/storage/%s/%s", base, id, token);
    return 1;
}

/* ctx.storage:getMetadata(id): the `_storage` row, or nil. */
static int p_file_meta(lua_State *L)
{
    call_state *cs = need_call(L, false, "ctx.storage.getMetadata");
    const char *id = luaL_checkstring(L, 1);
    herald_value *doc = scratch_new(L);
    if (storage_row(L, cs, id, doc))
        push_value(L, doc, 0);
    else
        lua_pushnil(L);
    scratch_drop(L, doc);
    return 1;
}

/* ctx.storage:delete(id): the row now, the bytes once the mutation is durable. */
static int p_file_delete(lua_State *L)
{
    call_state *cs = need_call(L, true, "ctx.storage.delete");
    const char *id = luaL_checkstring(L, 1);
    herald_error e = {0};
    const char *table = herald_id_table(cs->txn, id);
    if (!table || strcmp(table, "_storage"))
        return raise_code(L, HERALD_EINVAL, "ctx.storage.delete expects a storage id");
    herald_txn_allow_system(cs->txn, true);
    int rc = herald_delete(cs->txn, id, &e);
    herald_txn_allow_system(cs->txn, false);
    if (rc && rc != HERALD_ENOTFOUND) return raise_err(L, &e);
    return 0;
}

/* ---- ctx.scheduler (docs/functions.md, "The scheduler") ---- */

/*
 * ctx.scheduler:runAfter(ms, path, args) and runAt(ms since the epoch, path,
 * args): a `_scheduled_functions` row, written in this mutation (so a
 * mutation that fails schedules nothing); the server runs it when due.
 */
static int schedule(lua_State *L, bool after)
{
    const char *what = after ? "ctx.scheduler.runAfter" : "ctx.scheduler.runAt";
    call_state *cs = need_call(L, true, what);
    double when = luaL_checknumber(L, 1);
    const char *path = luaL_checkstring(L, 2);
    char norm[MAX_PATH_CHARS];
    herald_error e = {0};
    hd_fn_kind kind;
    bool internal;
    if (!isfinite(when) || (after && (when < 0 || when > 1e13)) || (!after && when < 0))
        return raise_code(L, HERALD_EINVAL, "the time must be a number of milliseconds");
    if (hd__fn_path_normalize(path, norm, sizeof norm, &e)) return raise_err(L, &e);
    if (hd__fn_kind(rt_of(L), norm, &kind, &internal))
        return raise_code(L, HERALD_ENOTFOUND, "ctx.scheduler: no function of that name");
    if (kind == HD_FN_QUERY)
        return raise_code(L, HERALD_EINVAL,
                          "ctx.scheduler runs mutations and actions (a query has no effect)");
    herald_value *args = lua_isnoneornil(L, 3) ? NULL : arg_value(L, 3, NULL, false, "args");
    if (args && args->type != HERALD_OBJECT)
        return raise_code(L, HERALD_EINVAL, "ctx.scheduler: args must be a table of fields");
    herald_value *row = scratch_new(L);
    herald_value v, state;
    herald_object_init(row);
    herald_object_init(&state);
    bool failed = herald_string(&v, norm, strlen(norm)) || herald_object_set(row, "name", 4, v);
    if (args) {
        failed = failed || herald_value_copy(&v, args) || herald_object_set(row, "args", 4, v);
    } else {
        herald_object_init(&v);
        failed = failed || herald_object_set(row, "args", 4, v);
    }
    failed = failed ||
             herald_object_set(row, "scheduledTime", 13,
                               herald_float64(after ? cs->now_ms + when : when)) ||
             herald_string(&v, "pending", 7) || herald_object_set(&state, "kind", 4, v) ||
             herald_object_set(row, "state", 5, state);
    if (failed) return raise_code(L, HERALD_ENOMEM, "out of memory");
    char id[HERALD_ID_CHARS + 1];
    herald_txn_allow_system(cs->txn, true);
    int rc = herald_insert(cs->txn, "_scheduled_functions", row, id, &e);
    herald_txn_allow_system(cs->txn, false);
    scratch_drop(L, row);
    if (args) scratch_drop(L, args);
    if (rc) return raise_err(L, &e);
    lua_pushstring(L, id);
    return 1;
}

static int p_run_after(lua_State *L)
{
    return schedule(L, true);
}

static int p_run_at(lua_State *L)
{
    return schedule(L, false);
}

/* ctx.scheduler:cancel(id): a run that has not started will not. */
static int p_cancel(lua_State *L)
{
    call_state *cs = need_call(L, true, "ctx.scheduler.cancel");
    const char *id = luaL_checkstring(L, 1);
    herald_value *row = scratch_new(L);
    herald_error e = {0};
    int rc = herald_get(cs->txn, "_scheduled_functions", id, row, NULL, &e);
    if (rc == HERALD_ENOTFOUND) {
        scratch_drop(L, row);
        return 0;
    }
    if (rc) return raise_err(L, &e);
    const herald_value *kind = herald_object_get(herald_object_get(row, "state"), "kind");
    if (kind && kind->type == HERALD_STRING && !strcmp(kind->u.s.ptr, "pending")) {
        herald_value patch, state, v;
        herald_object_init(&patch);
        herald_object_init(&state);
        bool failed = herald_string(&v, "canceled", 8) || herald_object_set(&state, "kind", 4, v) ||
                      herald_object_set(&patch, "state", 5, state) ||
                      herald_object_set(&patch, "completedTime", 13, herald_float64(cs->now_ms));
        herald_txn_allow_system(cs->txn, true);
        rc = failed ? herald_fail(&e, HERALD_ENOMEM, "out of memory")
                    : herald_patch(cs->txn, id, &patch, &e);
        herald_txn_allow_system(cs->txn, false);
        herald_value_free(&patch);
    }
    scratch_drop(L, row);
    if (rc) return raise_err(L, &e);
    return 0;
}

static int p_insert(lua_State *L)
{
    call_state *cs = need_call(L, true, "ctx.db.insert");
    const char *table = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    herald_value *doc = arg_value(L, 2, table_hint(rt_of(L), table), false, "insert");
    char id[HERALD_ID_CHARS + 1];
    herald_error e = {0};
    int rc = herald_insert(cs->txn, table, doc, id, &e);
    scratch_drop(L, doc);
    if (rc) return raise_err(L, &e);
    lua_pushstring(L, id);
    return 1;
}

/* ctx.db:patch(id, fields) and ctx.db:replace(id, doc): a write to an existing document. */
static int rewrite_doc(lua_State *L, bool patch)
{
    const char *what = patch ? "ctx.db.patch" : "ctx.db.replace";
    call_state *cs = need_call(L, true, what);
    const char *id = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    herald_value *v =
        arg_value(L, 2, table_hint(rt_of(L), herald_id_table(cs->txn, id)), patch, what + 7);
    herald_error e = {0};
    int rc = v->type != HERALD_OBJECT
                 ? herald_fail(&e, HERALD_EINVAL, "%s expects a table of fields", what)
             : patch ? herald_patch(cs->txn, id, v, &e)
                     : herald_replace(cs->txn, id, v, &e);
    scratch_drop(L, v);
    if (rc) return raise_err(L, &e);
    return 0;
}

static int p_patch(lua_State *L)
{
    return rewrite_doc(L, true);
}

static int p_replace(lua_State *L)
{
    return rewrite_doc(L, false);
}

static int p_delete(lua_State *L)
{
    call_state *cs = need_call(L, true, "ctx.db.delete");
    const char *id = luaL_checkstring(L, 1);
    herald_error e = {0};
    if (herald_delete(cs->txn, id, &e)) return raise_err(L, &e);
    return 0;
}

static int p_normalize_id(lua_State *L)
{
    call_state *cs = need_call(L, false, "ctx.db.normalizeId");
    const char *table = luaL_checkstring(L, 1);
    const char *id = lua_tostring(L, 2);
    const char *owner = id ? herald_id_table(cs->txn, id) : NULL;
    if (owner && !strcmp(owner, table))
        lua_pushvalue(L, 2);
    else
        lua_pushnil(L);
    return 1;
}

static int p_identity(lua_State *L)
{
    call_state *cs = need_call(L, false, "ctx.auth.getUserIdentity");
    if (!cs->identity || cs->identity->type != HERALD_OBJECT)
        lua_pushnil(L);
    else
        push_value(L, cs->identity, 0);
    return 1;
}

static int p_is_admin(lua_State *L)
{
    lua_pushboolean(L, need_call(L, false, "ctx.auth.isAdmin")->admin);
    return 1;
}

static int p_now_seconds(lua_State *L)
{
    call_state *cs = rt_of(L)->cur;
    /* Fixed for a query or mutation (they are deterministic); an action's clock moves. */
    double ms = cs && !cs->action ? cs->now_ms : (double)time(NULL) * 1000.0;
    lua_pushinteger(L, (lua_Integer)floor(ms / 1000.0));
    return 1;
}

static int p_token(lua_State *L)
{
    char tok[HD_TOKEN_CHARS + 1];
    herald_error e = {0};
    if (hd__token_new(tok, &e)) return raise_err(L, &e);
    lua_pushstring(L, tok);
    return 1;
}

static int p_token_equal(lua_State *L)
{
    const char *a = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
    const char *b = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    lua_pushboolean(L, a && b && hd__token_equal(a, b));
    return 1;
}

/* Which of Herald's protected metatables a value has: "array", "bytes", ... or nil. */
static int p_tag(lua_State *L)
{
    static const struct {
        const void *key;
        const char *name;
    } tags[] = {{&KEY_ARRAY_MT, "array"}, {&KEY_BYTES_MT, "bytes"}, {&KEY_INT64_MT, "int64"},
                {&KEY_FN_MT, "function"}, {&KEY_V_MT, "validator"}, {&KEY_ERROR_MT, "error"}};
    const void *tag = herald_tag(L, 1);
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
        if (tag == tags[i].key) {
            lua_pushstring(L, tags[i].name);
            return 1;
        }
    lua_pushnil(L);
    return 1;
}

static int l_print(lua_State *L)
{
    call_state *cs = rt_of(L)->cur;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    const char *where = cs && cs->path ? cs->path : "load";
    const hd_log_field f[] = {HD_LOG_STR("function", where)};
    hd__logf(HD_LOG_WARN, "print", f, 1, "herald: [%s] %.*s", where, (int)(len > 2000 ? 2000 : len),
             s);
    return 0;
}

/* ---------------------------------------------- isolation: read-only views */

/* Pushes the original behind the view at absolute index `view` (a view for sure). */
static void view_original(lua_State *L, int view)
{
    lua_getmetatable(L, view);
    lua_rawgetp(L, -1, &KEY_VIEW);
    lua_remove(L, -2);
}

/* __newindex of a view: every write is refused, saying why. */
static int view_newindex(lua_State *L)
{
    const char *lib = NULL;
    if (lua_getmetatable(L, 1) && lua_rawgetp(L, -1, &KEY_VIEW_NAME) == LUA_TSTRING)
        lib = lua_tostring(L, -1);
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    if (lib)
        return luaL_error(L, "%s%s%s is read-only: the libraries are shared by every call", lib,
                          key ? "." : "", key ? key : "");
    return luaL_error(L,
                      "module state is read-only while functions run (%s%s%s): keep state in "
                      "the database",
                      key ? "field `" : "a field", key ? key : "", key ? "`" : "");
}

/*
 * __index of a view whose original has an __index metamethod of its own:
 * reads the original's fields, then asks its metamethod with the view, so
 * that the metamethod never holds the writable original.
 */
static int view_index(lua_State *L)
{
    lua_settop(L, 2);
    view_original(L, 1);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, 3) != LUA_TNIL) return 1;
    if (luaL_getmetafield(L, 3, "__index") == LUA_TNIL) return 0;
    if (lua_type(L, -1) == LUA_TFUNCTION) {
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 2);
        lua_call(L, 2, 1);
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_gettable(L, -2);
    return 1;
}

/*
 * For the view at 1: pushes its original (at 2), and if the original's
 * metatable has `event`, calls it with the view and returns true.
 */
static bool view_event(lua_State *L, const char *event, int nresults)
{
    lua_settop(L, 1);
    view_original(L, 1);
    if (luaL_getmetafield(L, 2, event) == LUA_TNIL) return false;
    lua_pushvalue(L, 1);
    lua_call(L, 1, nresults);
    return true;
}

static int view_len(lua_State *L)
{
    if (view_event(L, "__len", 1)) return 1;
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 2));
    return 1;
}

/* next() that reads a view's original. */
static int l_next(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (push_original(L, 1)) lua_replace(L, 1);
    if (lua_next(L, 1)) return 2;
    lua_pushnil(L);
    return 1;
}

static int view_pairs(lua_State *L)
{
    if (view_event(L, "__pairs", 3)) return 3;
    lua_pushcfunction(L, l_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/*
 * Gives the view at `view` its metatable: reads go to the original at
 * `orig`, writes are refused, and the original's own metamethods (int64
 * arithmetic, __tostring, __call, ...) apply to the view as well.
 */
static void seal_view(lua_State *L, int view, int orig, const char *lib)
{
    static const char *const events[] = {
        "__add",  "__sub", "__mul",  "__div",      "__mod",  "__pow",   "__unm",    "__idiv",
        "__band", "__bor", "__bxor", "__shl",      "__shr",  "__bnot",  "__concat", "__eq",
        "__lt",   "__le",  "__call", "__tostring", "__name", "__close", NULL};
    view = lua_absindex(L, view);
    orig = lua_absindex(L, orig);
    lua_createtable(L, 0, 8);
    int mt = lua_gettop(L);
    bool own_index = false;
    if (lua_getmetatable(L, orig)) {
        for (size_t i = 0; events[i]; i++) {
            lua_pushstring(L, events[i]);
            if (lua_rawget(L, -2) != LUA_TNIL)
                lua_setfield(L, mt, events[i]);
            else
                lua_pop(L, 1);
        }
        own_index = luaL_getmetafield(L, orig, "__index") != LUA_TNIL;
        lua_pop(L, own_index ? 2 : 1);
    }
    if (own_index)
        lua_pushcfunction(L, view_index);
    else
        lua_pushvalue(L, orig);
    lua_setfield(L, mt, "__index");
    lua_pushcfunction(L, view_newindex);
    lua_setfield(L, mt, "__newindex");
    lua_pushcfunction(L, view_len);
    lua_setfield(L, mt, "__len");
    lua_pushcfunction(L, view_pairs);
    lua_setfield(L, mt, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, mt, "__metatable");
    lua_pushvalue(L, orig);
    lua_rawsetp(L, mt, &KEY_VIEW);
    if (lib) {
        lua_pushstring(L, lib);
        lua_rawsetp(L, mt, &KEY_VIEW_NAME);
    }
    lua_setmetatable(L, view);
}

/* Pushes a new read-only view of the table at `idx`, named `lib` in messages. */
static void push_view(lua_State *L, int idx, const char *lib)
{
    idx = lua_absindex(L, idx);
    lua_newtable(L);
    seal_view(L, -1, idx, lib);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_VIEWS);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* P.readonly(t, name): the prelude's views of herald, v, os and ctx's tables. */
static int p_readonly(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    push_view(L, 1, luaL_optstring(L, 2, NULL));
    return 1;
}

/* P.rawmeta(x): the metatable itself, for the prelude's own protected ones. */
static int p_rawmeta(lua_State *L)
{
    if (!lua_getmetatable(L, 1)) lua_pushnil(L);
    return 1;
}

static int l_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    lua_settop(L, 3);
    if (is_view(L, 1)) return view_newindex(L);
    lua_rawset(L, 1);
    return 1;
}

static int l_rawget(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    if (push_original(L, 1)) lua_replace(L, 1);
    lua_rawget(L, 1);
    return 1;
}

static int l_rawlen(lua_State *L)
{
    int t = lua_type(L, 1);
    luaL_argexpected(L, t == LUA_TTABLE || t == LUA_TSTRING, 1, "table or string");
    lua_settop(L, 1);
    if (t == LUA_TTABLE && push_original(L, 1)) lua_replace(L, 1);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
    return 1;
}

/*
 * getmetatable() that never hands out a writable shared table: a view's
 * metatable is its original's (as a view), and a metatable kept in module
 * state comes back as its view.
 */
static int l_getmetatable(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    if (is_view(L, 1)) {
        view_original(L, 1);
        lua_replace(L, 1);
    }
    if (!lua_getmetatable(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) return 1;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_VIEWS);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL) return 1;
    lua_settop(L, 2);
    return 1;
}

/*
 * setmetatable() without __gc: Lua runs finalizers with hooks off, so a
 * finalizer could spin or allocate outside every budget (and at lua_close).
 * A view given as the metatable stands for its original, whose metamethods
 * are raw fields as Lua needs them (a class kept in module state).
 */
static int l_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        if (push_original(L, 2)) lua_replace(L, 2);
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in server functions");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int l_no_randomseed(lua_State *L)
{
    return luaL_error(L, "math.randomseed is not available: the generator is shared by every call");
}

/* Makes the chunk on top of the stack read its globals from the call's (KEY_ENV). */
static void share_env(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ENV);
    lua_upvaluejoin(L, -2, 1, -1, 1);
    lua_pop(L, 1);
}

/* load() of text only: bytecode could break out of the sandbox. */
static int l_load(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    int has_env = !lua_isnone(L, 4);
    if (!strcmp(name, "=prelude")) name = "=(load)"; /* the freeze walk trusts that name */
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env) {
        lua_pushvalue(L, 4);
        if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    } else {
        share_env(L);
    }
    return 1;
}

/* require() of the app's own modules, from the bundle only. */
static int l_require(lua_State *L)
{
    hd_fnrt *rt = rt_of(L);
    const char *asked = luaL_checkstring(L, 1);
    /* require("folder.file") is Lua's spelling of functions/folder/file.lua (module names have no
     * dots). */
    char name[MAX_MODULE_CHARS + 1];
    if (strlen(asked) > MAX_MODULE_CHARS)
        return luaL_error(L, "require(\"%.64s...\"): no such module in this app", asked);
    snprintf(name, sizeof name, "%s", asked);
    for (char *c = name; *c; c++)
        if (*c == '.') *c = '/';
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_LOADED);
    int loaded = lua_gettop(L);
    if (lua_getfield(L, loaded, name) != LUA_TNIL) {
        if (lua_type(L, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == &SENTINEL_LOADING)
            return luaL_error(L, "require(\"%s\"): modules require each other in a cycle", asked);
        return 1;
    }
    lua_pop(L, 1);
    const fnfile *f = bundle_find(rt->bundle, name);
    if (!f) return luaL_error(L, "require(\"%s\"): no functions/%s.lua in this app", asked, name);
    char chunk[MAX_MODULE_CHARS + 32];
    snprintf(chunk, sizeof chunk, "@%s", f->name);
    if (luaL_loadbufferx(L, f->text, f->len, chunk, "t") != LUA_OK) return lua_error(L);
    share_env(L);
    lua_pushlightuserdata(L, &SENTINEL_LOADING);
    lua_setfield(L, loaded, name);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, loaded, name);
    return 1;
}

/* ------------------------------------------------------------- calls */

static const fndef *find_def(const hd_fnrt *rt, const char *path)
{
    size_t lo = 0, hi = rt->ndefs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(rt->defs[mid].path, path);
        if (c == 0) return &rt->defs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int hd__fn_path_normalize(const char *path, char *out, size_t size, herald_error *err)
{
    if (!path || !path[0]) return herald_fail(err, HERALD_EINVAL, "an empty function path");
    const char *colon = strchr(path, ':');
    size_t mlen = colon ? (size_t)(colon - path) : strlen(path);
    const char *name = colon ? colon + 1 : "default";
    static const char *const exts[] = {".js", ".ts", ".lua", ".mjs"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t el = strlen(exts[i]);
        if (mlen > el && !strncmp(path + mlen - el, exts[i], el)) {
            mlen -= el;
            break;
        }
    }
    if (mlen == 0 || !name[0] || strchr(name, ':') || mlen + strlen(name) + 2 > size ||
        mlen + strlen(name) + 2 > MAX_PATH_CHARS)
        return herald_fail(err, HERALD_EINVAL, "`%.100s` is not a function path (module:name)",
                           path);
    snprintf(out, size, "%.*s:%s", (int)mlen, path, name);
    return 0;
}

int hd__fn_kind(hd_fnrt *rt, const char *path, hd_fn_kind *kind, bool *internal)
{
    char norm[MAX_PATH_CHARS];
    if (hd__fn_path_normalize(path, norm, sizeof norm, NULL)) return HERALD_ENOTFOUND;
    const fndef *d = find_def(rt, norm);
    if (!d) return HERALD_ENOTFOUND;
    if (kind) *kind = d->kind;
    if (internal) *internal = d->internal;
    return 0;
}

static const char *kind_name(hd_fn_kind k)
{
    return k == HD_FN_MUTATION ? "mutation" : k == HD_FN_ACTION ? "action" : "query";
}

/* Validates `v` against `val` (NULL: anything) with ids resolved in the call's transaction. */
static int check_value(call_state *cs, const herald_validator *val, const herald_value *v,
                       const char *path, const char *what, herald_error *err)
{
    if (!val) return 0;
    herald_value nullv = herald_null();
    if (v->type == HERALD_UNDEFINED && val->kind != HERALD_V_OBJECT) v = &nullv;
    herald_error e = {0};
    int rc = hd__validate(val, v, what, id_table_cb, cs->txn, &e);
    if (rc) return herald_fail(err, rc, "%s: %s", path, e.message);
    return 0;
}

/*
 * Runs def's handler with the parked `args` (top of the Lua stack gets the
 * result, converted and checked, parked in *result). Raises on failure.
 */
static void invoke(lua_State *L, const fndef *d, const herald_value *args, herald_value *result)
{
    hd_fnrt *rt = rt_of(L);
    call_state *cs = rt->cur;
    herald_error e = {0};
    if (check_value(cs, d->args, args, d->path, "args", &e)) {
        raise_err(L, &e);
        return;
    }
    const char *outer = cs->path;
    bool outer_writable = cs->writable;
    cs->path = d->path;
    cs->writable = d->kind == HD_FN_MUTATION; /* a query stays read-only, whoever calls it */
    cs->depth++;
    lua_rawgeti(L, LUA_REGISTRYINDEX, d->handler);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_P);
    lua_getfield(L, -1, "make_ctx");
    lua_remove(L, -2);
    lua_pushnumber(L, cs->now_ms);
    lua_call(L, 1, 1);
    if (args->type == HERALD_UNDEFINED) {
        lua_createtable(L, 0, 0);
    } else {
        push_value(L, args, 0);
    }
    lua_call(L, 2, 1);
    conv cv = {&e, false};
    if (to_value(L, -1, d->returns, result, 0, &cv)) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s returned a value that cannot be sent: %s", d->path,
                 e.message);
        raise_code(L, e.code, msg);
        return;
    }
    lua_pop(L, 1);
    if (result->type == HERALD_UNDEFINED) *result = herald_null();
    if (check_value(cs, d->returns, result, d->path, "return value", &e)) {
        raise_err(L, &e);
        return;
    }
    cs->depth--;
    cs->path = outer;
    cs->writable = outer_writable;
}

typedef struct entry_args {
    const fndef *def;
    const herald_value *args;
    herald_value *result;
} entry_args;

static int invoke_entry(lua_State *L)
{
    entry_args *ea = lua_touserdata(L, 1);
    invoke(L, ea->def, ea->args, ea->result);
    return 0;
}

/*
 * The definition of the function a nested call names (the string at stack
 * index 1), which must be of `kind`; raises NotFound or InvalidArgument.
 */
static const fndef *nested_def(lua_State *L, hd_fn_kind kind)
{
    char norm[MAX_PATH_CHARS];
    herald_error e = {0};
    if (hd__fn_path_normalize(luaL_checkstring(L, 1), norm, sizeof norm, &e)) raise_err(L, &e);
    const fndef *d = find_def(rt_of(L), norm);
    if (!d) {
        snprintf(e.message, sizeof e.message, "no function `%s`", norm);
        raise_code(L, HERALD_ENOTFOUND, e.message);
    }
    if (d->kind != kind) {
        snprintf(e.message, sizeof e.message, "`%s` is a %s, not a%s %s", norm, kind_name(d->kind),
                 kind == HD_FN_ACTION ? "n" : "", kind_name(kind));
        raise_code(L, HERALD_EINVAL, e.message);
    }
    return d;
}

static int run_nested(lua_State *L, hd_fn_kind kind)
{
    call_state *cs = need_call(L, kind == HD_FN_MUTATION,
                               kind == HD_FN_MUTATION ? "ctx.runMutation" : "ctx.runQuery");
    const fndef *d = nested_def(L, kind);
    if (cs->depth >= MAX_CALL_DEPTH)
        return raise_code(L, HERALD_ELIMIT, "functions nested too deep");
    herald_value *args = arg_value(L, 2, d->args, false, "args");
    herald_value *result = scratch_new(L);
    /* Protected, so that the caller's depth and name come back even when
     * the callee fails and the caller catches it. */
    int depth = cs->depth;
    const char *path = cs->path;
    bool writable = cs->writable;
    entry_args ea = {d, args, result};
    lua_pushcfunction(L, invoke_entry);
    lua_pushlightuserdata(L, &ea);
    int status = lua_pcall(L, 1, 0, 0);
    cs->depth = depth;
    cs->path = path;
    cs->writable = writable;
    if (status != LUA_OK) {
        /* Freed now: app code may catch the error and call again, many times. */
        scratch_drop(L, result);
        scratch_drop(L, args);
        return lua_error(L);
    }
    if (result->type == HERALD_NULL)
        lua_pushnil(L);
    else
        push_value(L, result, 0);
    scratch_drop(L, result);
    scratch_drop(L, args);
    return 1;
}

static int p_run_query(lua_State *L)
{
    return run_nested(L, HD_FN_QUERY);
}

static int p_run_mutation(lua_State *L)
{
    return run_nested(L, HD_FN_MUTATION);
}

/*
 * Gives the call new globals: a table whose misses read the shared base
 * (KEY_CALL_MT) and that every module sees as _ENV, through the one
 * upvalue they share (KEY_ENV). What the call sets there dies with it.
 */
static void new_call_env(lua_State *L)
{
    hd_fnrt *rt = rt_of(L);
    if (rt->env_unused) return;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ENV);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_CALL_MT);
    lua_setmetatable(L, -2);
    lua_setupvalue(L, -2, 1);
    lua_pop(L, 1);
}

/*
 * Whether the globals of the call that just ended are as new_call_env()
 * made them (no key but _G, itself; their metatable is protected), so that
 * the next call may take them and the allocation is saved. Allocates
 * nothing, so it may run outside protected mode.
 */
static bool env_unused(lua_State *L)
{
    int top = lua_gettop(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ENV);
    lua_getupvalue(L, -1, 1);
    int env = lua_gettop(L);
    bool unused = false;
    lua_pushnil(L);
    if (lua_next(L, env) && lua_type(L, -2) == LUA_TSTRING && !strcmp(lua_tostring(L, -2), "_G") &&
        lua_rawequal(L, -1, env)) {
        lua_pop(L, 1);
        unused = !lua_next(L, env);
    }
    lua_settop(L, top);
    return unused;
}

/* Puts every module-level local back to what it held after loading. */
static void restore_upvalues(hd_fnrt *rt)
{
    lua_State *L = rt->L;
    if (!rt->nrestore) return;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_RESTORE);
    int list = lua_gettop(L);
    for (size_t i = 0; i < rt->nrestore; i++) {
        lua_rawgeti(L, list, (lua_Integer)(2 * i + 1));
        lua_rawgeti(L, list, (lua_Integer)(2 * i + 2));
        lua_setupvalue(L, -2, rt->restore_slots[i]);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static int call_entry(lua_State *L)
{
    entry_args *ea = lua_touserdata(L, 1);
    new_call_env(L);
    herald_value *result = scratch_new(L);
    invoke(L, ea->def, ea->args, result);
    *ea->result = *result;
    *result = herald_undefined();
    scratch_drop(L, result);
    return 0;
}

/*
 * Length of the place Lua writes in front of a message at `s`
 * ("functions/videos.lua:12: ", "prelude:40: ", "(load):1: ",
 * "[string \"...\"]:1: "), or 0.
 */
static size_t location_len(const char *s)
{
    size_t n = 0;
    if (!strncmp(s, "functions/", 10)) {
        n = 10;
        while (isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == '/')
            n++;
        if (n == 10 || strncmp(s + n, ".lua", 4)) return 0;
        n += 4;
    } else if (!strncmp(s, "prelude", 7)) {
        n = 7;
    } else if (!strncmp(s, "(load)", 6)) {
        n = 6;
    } else if (!strncmp(s, "[string \"", 9)) {
        const char *end = strstr(s + 9, "\"]");
        if (!end || memchr(s, '\n', (size_t)(end - s))) return 0;
        n = (size_t)(end - s) + 2;
    } else {
        return 0;
    }
    if (s[n++] != ':' || !isdigit((unsigned char)s[n])) return 0;
    while (isdigit((unsigned char)s[n]))
        n++;
    return s[n] == ':' && s[n + 1] == ' ' ? n + 2 : 0;
}

/* Copies `in` without the places in it (also those of errors caught and raised again). */
static void strip_locations(const char *in, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 1 < size;) {
        bool boundary = i == 0 || !(isalnum((unsigned char)in[i - 1]) || in[i - 1] == '_' ||
                                    in[i - 1] == '/' || in[i - 1] == '.');
        size_t skip = boundary ? location_len(in + i) : 0;
        if (skip) {
            i += skip;
            continue;
        }
        out[o++] = in[i++];
    }
    out[o] = 0;
}

/*
 * Turns the error object on top of the stack into a code, message and
 * data. Without `locations` (a caller who is not the admin, no --dev), a
 * message raised as a string loses the file and line it names inside the
 * app; herald.error{...} messages are the app's own and stay as written.
 */
static int classify_error(hd_fnrt *rt, int status, bool locations, herald_value *data,
                          herald_error *err)
{
    lua_State *L = rt->L;
    if (rt->yield_tripped)
        return herald_fail(err, HERALD_EBUSY, "%s: takes long; run again on an evaluator thread",
                           rt->cur && rt->cur->path ? rt->cur->path : "function");
    if (rt->time_tripped)
        return herald_fail(err, HERALD_ELIMIT, "%s: ran out of time (an action may run %g s)",
                           rt->act_def ? rt->act_def->path : "action", rt->act_seconds);
    if (rt->instr_tripped)
        return herald_fail(err, HERALD_ELIMIT, "%s: instruction limit of %llu exceeded",
                           rt->cur && rt->cur->path ? rt->cur->path : "function",
                           (unsigned long long)rt->limits.instructions);
    if (status == LUA_ERRMEM || rt->mem_tripped)
        return herald_fail(err, HERALD_ELIMIT, "%s: memory limit of %zu MiB exceeded",
                           rt->cur && rt->cur->path ? rt->cur->path : "function",
                           rt->limits.memory >> 20);
    if (lua_type(L, -1) == LUA_TTABLE && has_mt(L, -1, &KEY_ERROR_MT)) {
        lua_getfield(L, -1, "code");
        const char *code = lua_tostring(L, -1);
        int c = HERALD_EFUNCTION;
        for (int k = HERALD_ENOMEM; code && k >= HERALD_EFUNCTION; k--)
            if (!strcmp(herald_errcode_name(k), code)) c = k;
        lua_pop(L, 1);
        lua_getfield(L, -1, "message");
        const char *m = lua_tostring(L, -1);
        herald_fail(err, c, "%s", m ? m : "function error");
        lua_pop(L, 1);
        lua_getfield(L, -1, "data");
        herald_error e2 = {0};
        conv cv = {&e2, false};
        if (!lua_isnil(L, -1) && to_value(L, -1, NULL, data, 0, &cv)) *data = herald_undefined();
        lua_pop(L, 1);
        return c;
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *m = lua_tostring(L, -1);
        if (locations) return herald_fail(err, HERALD_EFUNCTION, "%s", m);
        char bare[sizeof err->message];
        strip_locations(m, bare, sizeof bare);
        return herald_fail(err, HERALD_EFUNCTION, "%s", bare[0] ? bare : "function error");
    }
    return herald_fail(err, HERALD_EFUNCTION, "%s raised a %s",
                       rt->cur && rt->cur->path ? rt->cur->path : "function", luaL_typename(L, -1));
}

/*
 * The function a caller may call as `kind` at `path` (internal ones only
 * when `internal`), on a runtime with nothing running, with `args` an
 * object; else the error the caller gets.
 */
static int callable(hd_fnrt *rt, const char *path, hd_fn_kind kind, bool internal,
                    const herald_value *args, const fndef **out, herald_error *err)
{
    char norm[MAX_PATH_CHARS];
    int rc = hd__fn_path_normalize(path, norm, sizeof norm, err);
    if (rc) return rc;
    const fndef *d = find_def(rt, norm);
    if (!d || (d->internal && !internal))
        return herald_fail(err, HERALD_ENOTFOUND, "no %sfunction `%s`", d ? "public " : "", norm);
    if (d->kind != kind)
        return herald_fail(err, HERALD_EINVAL, "`%s` is a%s %s; call it as a%s %s", norm,
                           d->kind == HD_FN_ACTION ? "n" : "", kind_name(d->kind),
                           d->kind == HD_FN_ACTION ? "n" : "", kind_name(d->kind));
    if (rt->cur || rt->co)
        return herald_fail(err, HERALD_EBUSY, "a function is already running here");
    if (args->type != HERALD_OBJECT)
        return herald_fail(err, HERALD_EVALIDATION, "%s: args must be an object", norm);
    *out = d;
    return 0;
}

void (*hd__fn_observer)(const char *path, hd_fn_kind kind, int rc, double seconds);

int hd__fn_call(hd_fnrt *rt, const hd_fncall *call, herald_value *result, herald_value *error_data,
                herald_error *err)
{
    *result = herald_undefined();
    *error_data = herald_undefined();
    if (call->journal_out) *call->journal_out = NULL;
    herald_value noargs;
    herald_object_init(&noargs);
    const herald_value *args =
        call->args && call->args->type != HERALD_UNDEFINED ? call->args : &noargs;
    const fndef *d;
    int rc = callable(rt, call->path, call->kind, call->admin || call->internal, args, &d, err);
    if (rc) return rc;
    struct timespec ts, started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    clock_gettime(CLOCK_REALTIME, &ts);
    call_state cs = {
        .path = d->path,
        .txn = call->txn,
        .rs = call->rs,
        .identity = call->identity,
        .admin = call->admin,
        .writable = d->kind == HD_FN_MUTATION,
        .now_ms = call->now_ms > 0 ? call->now_ms
                                   : (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000),
        .journal = call->journal,
        .want_journal = call->journal_out != NULL,
    };
    lua_State *L = rt->L;
    rt->cur = &cs;
    lua_settop(L, 0);
    entry_args ea = {d, args, result};
    budget_start(rt);
    rt->yield_at = d->kind == HD_FN_QUERY ? call->yield_after : 0;
    lua_pushcfunction(L, call_entry);
    lua_pushlightuserdata(L, &ea);
    int status = lua_pcall(L, 1, 0, 0);
    budget_end(rt);
    rt->yield_at = 0;
    if (call->yielded) *call->yielded = rt->yield_tripped;
    if (status == LUA_OK && (rt->mem_tripped || rt->instr_tripped || rt->yield_tripped)) {
        /* The budget ran out and app code caught the error: the call still fails. */
        lua_pushnil(L);
        status = LUA_ERRRUN;
    }
    if (status != LUA_OK) {
        herald_value_free(result);
        rc = classify_error(rt, status, call->admin || rt->limits.dev, error_data, err);
    }
    if (call->journal_out && !rc)
        *call->journal_out = cs.journal_out;
    else
        free(cs.journal_out);
    restore_upvalues(rt);
    rt->env_unused = env_unused(L);
    lua_settop(L, 0);
    scratch_clear(rt);
    rt->cur = NULL;
    if (hd__fn_observer && !(call->yielded && *call->yielded)) {
        struct timespec ended;
        clock_gettime(CLOCK_MONOTONIC, &ended);
        hd__fn_observer(d->path, d->kind, rc,
                        (double)(ended.tv_sec - started.tv_sec) +
                            (double)(ended.tv_nsec - started.tv_nsec) / 1e9);
    }
    return rc;
}

/* herald.json.encode(value): JSON text. */
static int p_json_encode(lua_State *L)
{
    herald_value *v = arg_value(L, 1, NULL, false, "herald.json.encode");
    char *text = herald_value_to_json(v);
    scratch_drop(L, v);
    if (!text) return raise_code(L, HERALD_ENOMEM, "out of memory");
    lua_pushstring(L, text);
    free(text);
    return 1;
}

/* herald.json.decode(text): the value, or raises HERALD_EINVAL for text that is not JSON. */
static int p_json_decode(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    herald_error e = {0};
    herald_value *v = scratch_new(L);
    if (herald_value_from_json(text, len, v, &e)) {
        scratch_drop(L, v);
        return raise_err(L, &e);
    }
    if (v->type == HERALD_NULL)
        lua_pushnil(L);
    else
        push_value(L, v, 0);
    scratch_drop(L, v);
    return 1;
}

/* ------------------------------------------------------------- actions */

/*
 * An action runs as a coroutine of the runtime's state. The primitives that
 * wait (fetch, writes) fill rt->step and yield; the caller resumes the
 * coroutine with the outcome, and the primitive's continuation hands it to
 * the app's code, or raises it.
 */

/* The action's call state, for a primitive that may only run in an action outside any read. */
static call_state *need_action(lua_State *L, const char *what)
{
    call_state *cs = rt_of(L)->cur;
    if (cs && cs->action && !cs->txn && L != rt_of(L)->co) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s cannot run inside a coroutine of the app's", what);
        raise_code(L, HERALD_EINVAL, msg);
    }
    if (!cs || !cs->action || cs->txn) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s is only available in actions", what);
        raise_code(L, HERALD_EACCESS, msg);
    }
    return cs;
}

/* Past the action's wall-clock limit: raises (the limit cannot be caught). */
static void check_deadline(lua_State *L)
{
    hd_fnrt *rt = rt_of(L);
    if (rt->act_deadline > 0 && mono_now() >= rt->act_deadline) {
        rt->time_tripped = true;
        lua_sethook(L, hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "the action ran out of time");
    }
}

/*
 * check_value() for an action, which has no transaction: the ids the value
 * names are resolved on a snapshot taken for it (none without a validator).
 */
static int check_on_snapshot(call_state *cs, const herald_validator *val, const herald_value *v,
                             const char *path, const char *what, herald_error *err)
{
    if (!val) return 0;
    herald_txn *t;
    int rc = herald_read_begin(cs->store, &t, err);
    if (rc) return rc;
    cs->txn = t;
    rc = check_value(cs, val, v, path, what, err);
    cs->txn = NULL;
    herald_txn_end(t);
    return rc;
}

/* P.with_snapshot(f, ...): f(...) on a read snapshot of its own (an action's reads). */
static int p_with_snapshot(lua_State *L)
{
    call_state *cs = need_call(L, false, "a read");
    int nargs = lua_gettop(L) - 1;
    if (cs->txn || !cs->store) {
        lua_call(L, nargs, LUA_MULTRET);
        return lua_gettop(L);
    }
    herald_txn *t;
    herald_error e = {0};
    if (herald_read_begin(cs->store, &t, &e)) return raise_err(L, &e);
    cs->txn = t;
    int status = lua_pcall(L, nargs, LUA_MULTRET, 0);
    cs->txn = NULL;
    herald_txn_end(t);
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

/* Raises what a write answered with: its code, message and structured data. */
static int raise_answer(lua_State *L, int code, const char *message, const herald_value *data)
{
    lua_createtable(L, 0, 3);
    lua_pushstring(L, herald_errcode_name(code));
    lua_setfield(L, -2, "code");
    lua_pushstring(L, message && message[0] ? message : herald_strerror(code));
    lua_setfield(L, -2, "message");
    if (data && data->type != HERALD_UNDEFINED) {
        push_value(L, data, 0);
        lua_setfield(L, -2, "data");
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ERROR_MT);
    lua_setmetatable(L, -2);
    return lua_error(L);
}

static int k_write(lua_State *L, int status, lua_KContext kctx)
{
    (void)status;
    (void)kctx;
    hd_fnrt *rt = rt_of(L);
    hd_wreq *r = rt->written;
    rt->written = NULL;
    check_deadline(L);
    if (!r) return raise_code(L, HERALD_EBUSY, "the write was not answered");
    if (r->rc) return raise_answer(L, r->rc, r->err.message, &r->error_data);
    if (r->result.type == HERALD_NULL || r->result.type == HERALD_UNDEFINED)
        lua_pushnil(L);
    else
        push_value(L, &r->result, 0);
    return 1;
}

/*
 * P.action_write(path, args): runs mutation `path` (an app's, or one of
 * Herald's own, "@herald:...") as its own transaction, as the action's
 * caller; internal mutations too. Returns what it returns.
 */
static int p_action_write(lua_State *L)
{
    call_state *cs = need_action(L, "ctx.runMutation");
    hd_fnrt *rt = rt_of(L);
    const fndef *d = nested_def(L, HD_FN_MUTATION);
    herald_value *args = lua_isnoneornil(L, 2) ? NULL : arg_value(L, 2, d->args, false, "args");
    hd_wreq *r = calloc(1, sizeof *r);
    if (!r || !(r->fn_path = strdup(d->path)) ||
        (args ? herald_value_copy(&r->fn_args, args) : (herald_object_init(&r->fn_args), 0)) ||
        herald_value_copy(&r->identity, &rt->act_identity)) {
        if (r) hd__wreq_free(r);
        return raise_code(L, HERALD_ENOMEM, "out of memory");
    }
    if (args) scratch_drop(L, args);
    r->admin = cs->admin;
    r->internal = true;
    rt->step->wait = HD_ACT_WRITE;
    rt->step->write = r;
    return lua_yieldk(L, 0, 0, k_write);
}

static int k_fetch(lua_State *L, int status, lua_KContext kctx)
{
    (void)status;
    (void)kctx;
    hd_fnrt *rt = rt_of(L);
    hd_fetch_response *resp = rt->fetched; /* freed at the end, or with the action */
    check_deadline(L);
    if (!resp) return raise_code(L, HERALD_EBUSY, "the request was not answered");
    if (resp->rc) {
        herald_error e = resp->err;
        hd__fetch_response_free(resp);
        rt->fetched = NULL;
        return raise_err(L, &e);
    }
    lua_pushinteger(L, (lua_Integer)resp->status);
    lua_createtable(L, 0, (int)resp->nheaders);
    for (size_t i = 0; i < resp->nheaders; i++) {
        const char *h = resp->headers[i], *colon = strchr(h, ':');
        if (!colon) continue;
        const char *val = colon + 1;
        while (*val == ' ' || *val == '\t')
            val++;
        lua_pushlstring(L, h, (size_t)(colon - h));
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isstring(L, -1)) { /* a repeated header: its values joined as HTTP allows */
            lua_pushstring(L, ", ");
            lua_pushstring(L, val);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, val);
        }
        lua_rawset(L, -3);
    }
    lua_pushlstring(L, resp->body ? resp->body : "", resp->body_len);
    lua_pushstring(L, resp->url ? resp->url : "");
    hd__fetch_response_free(resp);
    rt->fetched = NULL;
    return 4;
}

/* The string at `idx`, or NULL when nil; raises for anything else. */
static const char *opt_string(lua_State *L, int idx, const char *what, size_t *len)
{
    if (lua_isnoneornil(L, idx)) return NULL;
    if (lua_type(L, idx) != LUA_TSTRING) luaL_error(L, "fetch: %s must be a string", what);
    return lua_tolstring(L, idx, len);
}

/*
 * P.fetch(url, method, headers, body): an outgoing HTTP request; the action
 * stops until it is answered. Returns status, headers (lower-case names),
 * body and the final URL; raises on failure.
 */
static int p_fetch(lua_State *L)
{
    need_action(L, "fetch");
    hd_fnrt *rt = rt_of(L);
    size_t blen = 0;
    const char *url = luaL_checkstring(L, 1);
    const char *method = opt_string(L, 2, "method", NULL);
    const char *body = opt_string(L, 4, "body", &blen);
    size_t nh = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "fetch: headers must map names to strings");
            nh++;
            lua_pop(L, 1);
        }
    }
    if (nh > 100) return luaL_error(L, "fetch: more than 100 headers");
    /* Nothing below raises: what is allocated is the request's. */
    hd_fetch_request *req = calloc(1, sizeof *req);
    bool failed = !req || !(req->url = strdup(url)) ||
                  !(req->method = strdup(method ? method : "GET")) ||
                  (nh && !(req->headers = calloc(nh, sizeof *req->headers)));
    if (!failed && body) {
        failed = !(req->body = malloc(blen ? blen : 1));
        if (!failed) memcpy(req->body, body, blen);
        req->body_len = blen;
    }
    if (!failed && nh) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            size_t kl, vl;
            const char *k = lua_tolstring(L, -2, &kl), *v = lua_tolstring(L, -1, &vl);
            char *h = malloc(kl + vl + 3);
            if (h) {
                memcpy(h, k, kl);
                memcpy(h + kl, ": ", 2);
                memcpy(h + kl + 2, v, vl + 1);
                req->headers[req->nheaders++] = h;
            } else {
                failed = true;
            }
            lua_pop(L, 1);
        }
    }
    if (failed) {
        if (req) hd__fetch_request_free(req);
        return raise_code(L, HERALD_ENOMEM, "out of memory");
    }
    if (rt->act_deadline > 0) req->timeout_seconds = rt->act_deadline - mono_now();
    rt->step->wait = HD_ACT_FETCH;
    rt->step->fetch = req;
    return lua_yieldk(L, 0, 0, k_fetch);
}

/*
 * P.action_store(data, contentType): ctx.storage:store in an action. The
 * bytes go to a temporary file (made durable and renamed by the writer),
 * and a `_storage` row is inserted for them; returns {id}.
 */
static int p_action_store(lua_State *L)
{
    call_state *cs = need_action(L, "ctx.storage.store");
    hd_fnrt *rt = rt_of(L);
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    const char *type = lua_isnoneornil(L, 2) ? NULL : luaL_checkstring(L, 2);
    if (type && (strlen(type) > 120 || !hd__media_type_ok(type)))
        return raise_code(L, HERALD_EINVAL, "ctx.storage.store: contentType is not a media type");
    if (!rt->limits.files_dir)
        return raise_code(L, HERALD_EBUSY, "file storage is served by `herald serve` only");
    (void)cs;
    /* Nothing below raises until the request is built: what is allocated is freed here. */
    hd_blob_writer w = {.fd = -1};
    herald_error e = {0};
    char sha[65];
    int rc = hd__blob_begin(rt->limits.files_dir, &w, &e);
    if (!rc) rc = hd__blob_write(&w, data, len, &e);
    if (!rc) rc = hd__blob_finish(&w, sha, &e);
    hd_wreq *r = rc ? NULL : calloc(1, sizeof *r);
    bool failed = !r;
    if (r) {
        /* [{"op": "insert", "table": "_storage", "value": {sha256, size, contentType}}] */
        herald_value op, doc, v;
        herald_object_init(&doc);
        herald_object_init(&op);
        failed = herald_string(&v, sha, 64) || herald_object_set(&doc, "sha256", 6, v) ||
                 herald_object_set(&doc, "size", 4, herald_float64((double)len)) ||
                 (type && (herald_string(&v, type, strlen(type)) ||
                           herald_object_set(&doc, "contentType", 11, v))) ||
                 herald_string(&v, "insert", 6) || herald_object_set(&op, "op", 2, v) ||
                 herald_string(&v, "_storage", 8) || herald_object_set(&op, "table", 5, v);
        failed = herald_object_set(&op, "value", 5, doc) || failed; /* takes doc in any case */
        herald_array_init(&r->ops);
        if (failed)
            herald_value_free(&op);
        else
            failed = herald_array_push(&r->ops, op) || !(r->upload_tmp = strdup(w.path));
    }
    if (rc || failed) {
        hd__blob_abort(&w);
        if (r) hd__wreq_free(r);
        if (!rc) herald_fail(&e, HERALD_ENOMEM, "out of memory");
        return raise_err(L, &e);
    }
    r->system = true;
    rt->step->wait = HD_ACT_WRITE;
    rt->step->write = r;
    return lua_yieldk(L, 0, 0, k_write);
}

/* P.clock_ms(): the wall clock now, in ms (an action's time moves). */
static int p_clock_ms(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (double)ts.tv_sec * 1e3 + (double)(ts.tv_nsec / 1000000));
    return 1;
}

/*
 * P.action_prepare(path, args): for ctx.runAction, the handler of action
 * `path` and its arguments, checked against its validator (on a snapshot).
 */
static int p_action_prepare(lua_State *L)
{
    call_state *cs = need_action(L, "ctx.runAction");
    const fndef *d = nested_def(L, HD_FN_ACTION);
    herald_value *args = arg_value(L, 2, d->args, false, "args");
    if (args->type == HERALD_UNDEFINED) herald_object_init(args);
    herald_error e = {0};
    if (check_on_snapshot(cs, d->args, args, d->path, "args", &e)) {
        scratch_drop(L, args);
        return raise_err(L, &e);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, d->handler);
    push_value(L, args, 0);
    scratch_drop(L, args);
    return 2;
}

/* P.action_result(path, value): an action's return value, checked and copied for its caller. */
static int p_action_result(lua_State *L)
{
    call_state *cs = need_action(L, "ctx.runAction");
    char norm[MAX_PATH_CHARS];
    const fndef *d = hd__fn_path_normalize(luaL_checkstring(L, 1), norm, sizeof norm, NULL)
                         ? NULL
                         : find_def(rt_of(L), norm);
    herald_error e = {0};
    herald_value *result = scratch_new(L);
    conv cv = {&e, false};
    if (to_value(L, 2, d ? d->returns : NULL, result, 0, &cv)) return raise_err(L, &e);
    if (result->type == HERALD_UNDEFINED) *result = herald_null();
    if (d && check_on_snapshot(cs, d->returns, result, d->path, "return value", &e))
        return raise_err(L, &e);
    if (result->type == HERALD_NULL)
        lua_pushnil(L);
    else
        push_value(L, result, 0);
    scratch_drop(L, result);
    return 1;
}

/* Ends the action: the runtime is as after any call, ready for the next. */
static void action_end(hd_fnrt *rt)
{
    lua_State *L = rt->L;
    budget_end(rt);
    rt->act_deadline = 0;
    if (rt->co_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, rt->co_ref);
    rt->co_ref = LUA_NOREF;
    rt->co = NULL;
    free(rt->act.journal_out);
    herald_value_free(&rt->act_identity);
    if (rt->fetched) hd__fetch_response_free(rt->fetched);
    rt->fetched = NULL;
    rt->written = NULL;
    rt->act_def = NULL;
    rt->step = NULL;
    restore_upvalues(rt);
    rt->env_unused = env_unused(L);
    lua_settop(L, 0);
    scratch_clear(rt);
    rt->cur = NULL;
    lua_gc(L, LUA_GCCOLLECT);
}

/* Converts the finished action's return value (on the coroutine's stack). */
static int action_outcome(hd_fnrt *rt, int nres, herald_value *result, herald_error *err)
{
    lua_State *co = rt->co;
    const fndef *d = rt->act_def;
    conv cv = {err, false};
    *result = herald_undefined();
    int rc = nres ? to_value(co, lua_gettop(co) - nres + 1, d->returns, result, 0, &cv) : 0;
    if (rc) {
        char msg[sizeof err->message];
        memcpy(msg, err->message, sizeof msg);
        herald_value_free(result);
        return herald_fail(err, rc, "%s returned a value that cannot be sent: %.400s", d->path,
                           msg);
    }
    if (result->type == HERALD_UNDEFINED) *result = herald_null();
    rc = check_on_snapshot(&rt->act, d->returns, result, d->path, "return value", err);
    if (rc) herald_value_free(result);
    return rc;
}

/* Runs the action until it stops or ends; `nargs` values wait on the coroutine's stack. */
static int action_step(hd_fnrt *rt, int nargs, hd_act_step *step, herald_value *result,
                       herald_value *error_data, herald_error *err)
{
    memset(step, 0, sizeof *step);
    *result = herald_undefined();
    *error_data = herald_undefined();
    rt->step = step;
    rt->cur = &rt->act;
    int nres = 0;
    int status = lua_resume(rt->co, rt->L, nargs, &nres);
    rt->cur = NULL;
    if (status == LUA_YIELD && step->wait != HD_ACT_DONE) {
        lua_pop(rt->co, nres);
        step->timeout = rt->act_deadline - mono_now();
        return 0;
    }
    int rc = 0;
    if (status == LUA_YIELD) {
        rc = herald_fail(err, HERALD_EFUNCTION,
                         "%s: coroutine.yield() outside a coroutine of the action's own",
                         rt->act_def->path);
    } else if (status == LUA_OK && (rt->refused || rt->instr_tripped || rt->time_tripped)) {
        rt->mem_tripped = rt->refused != 0;
        lua_pushnil(rt->L);
        rc = classify_error(rt, LUA_ERRRUN, true, error_data, err);
    } else if (status == LUA_OK) {
        rt->cur = &rt->act;
        rc = action_outcome(rt, nres, result, err);
        rt->cur = NULL;
    } else {
        lua_xmove(rt->co, rt->L, 1);
        rt->cur = &rt->act;
        rc = classify_error(rt, status, rt->act.admin || rt->limits.dev, error_data, err);
        rt->cur = NULL;
    }
    step->wait = HD_ACT_DONE;
    action_end(rt);
    return rc;
}

typedef struct action_setup {
    hd_fnrt *rt;
    const fndef *d;
    const herald_value *args;
    const herald_value *request;
} action_setup;

/* Makes the coroutine and leaves handler, ctx and args (or the request) on its stack. */
static int action_begin(lua_State *L)
{
    action_setup *as = lua_touserdata(L, 1);
    hd_fnrt *rt = as->rt;
    new_call_env(L);
    lua_State *co = lua_newthread(L);
    rt->co = co;
    rt->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawgeti(L, LUA_REGISTRYINDEX, as->d->handler);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_P);
    lua_getfield(L, -1, "make_action_ctx");
    lua_remove(L, -2);
    lua_pushnumber(L, rt->act.now_ms);
    lua_call(L, 1, 1);
    const herald_value *v = as->request ? as->request : as->args;
    if (v->type == HERALD_UNDEFINED)
        lua_createtable(L, 0, 0);
    else
        push_value(L, v, 0);
    lua_xmove(L, co, 3);
    return 0;
}

int hd__fn_action_start(hd_fnrt *rt, const hd_actcall *call, hd_act_step *step,
                        herald_value *result, herald_value *error_data, herald_error *err)
{
    memset(step, 0, sizeof *step);
    *result = herald_undefined();
    *error_data = herald_undefined();
    herald_value noargs;
    herald_object_init(&noargs);
    const herald_value *args =
        call->args && call->args->type != HERALD_UNDEFINED ? call->args : &noargs;
    const fndef *d;
    int rc = callable(rt, call->path, HD_FN_ACTION, call->admin || call->internal, args, &d, err);
    if (rc) return rc;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    memset(&rt->act, 0, sizeof rt->act);
    rt->act.path = d->path;
    rt->act.admin = call->admin;
    rt->act.action = true;
    rt->act.store = call->store;
    rt->act.now_ms = (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000);
    rt->act_identity = herald_undefined();
    if (call->identity && herald_value_copy(&rt->act_identity, call->identity))
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    rt->act.identity = &rt->act_identity;
    rt->act_def = d;
    /* The arguments, checked with the ids they name resolved on a snapshot. */
    if (!call->request && (rc = check_on_snapshot(&rt->act, d->args, args, d->path, "args", err))) {
        herald_value_free(&rt->act_identity);
        return rc;
    }
    rt->act_seconds = call->seconds > 0 ? call->seconds : 600;
    budget_start(rt);
    rt->act_deadline = mono_now() + rt->act_seconds;
    lua_State *L = rt->L;
    lua_settop(L, 0);
    action_setup as = {rt, d, args, call->request};
    rt->cur = &rt->act;
    lua_pushcfunction(L, action_begin);
    lua_pushlightuserdata(L, &as);
    int status = lua_pcall(L, 1, 0, 0);
    rt->cur = NULL;
    if (status != LUA_OK) {
        rt->cur = &rt->act;
        rc = classify_error(rt, status, true, error_data, err);
        rt->cur = NULL;
        action_end(rt);
        return rc;
    }
    return action_step(rt, 2, step, result, error_data, err);
}

int hd__fn_action_fetched(hd_fnrt *rt, hd_fetch_response *resp, hd_act_step *step,
                          herald_value *result, herald_value *error_data, herald_error *err)
{
    rt->fetched = resp;
    return action_step(rt, 0, step, result, error_data, err);
}

int hd__fn_action_written(hd_fnrt *rt, hd_wreq *r, hd_act_step *step, herald_value *result,
                          herald_value *error_data, herald_error *err)
{
    rt->written = r;
    return action_step(rt, 0, step, result, error_data, err);
}

void hd__fn_action_abandon(hd_fnrt *rt)
{
    if (rt->co) action_end(rt);
}

/* ------------------------------------------------------------- loading */

static void set_fn(lua_State *L, const char *name, lua_CFunction f)
{
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, name);
}

static void new_mt(lua_State *L, const void *key, const char *name)
{
    lua_createtable(L, 0, 2);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable"); /* app code can neither read nor swap it */
    lua_pushlightuserdata(L, (void *)key);
    lua_rawsetp(L, -2, &KEY_TAG);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

static int err_tostring(lua_State *L)
{
    lua_getfield(L, 1, "message");
    return 1;
}

/*
 * Opens the safe libraries and the prelude (runs in protected mode), and
 * lays out the globals app code sees: the base table (the registry's
 * globals) holds the base functions, read-only views of the libraries and
 * of the prelude's `herald`, `v` and `os`; the prelude runs with a private
 * copy of it and the writable originals, which app code never reaches.
 */
static int setup(lua_State *L)
{
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 1);
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0); /* not global: only its clock survives */
    int os = lua_gettop(L);
    lua_settop(L, os);
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    static const char *const removed[] = {"dofile", "loadfile", "collectgarbage", "load", NULL};
    for (size_t i = 0; removed[i]; i++) {
        lua_pushnil(L);
        lua_setfield(L, g, removed[i]);
    }
    lua_getfield(L, g, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    lua_getfield(L, g, "math");
    lua_pushcfunction(L, l_no_randomseed);
    lua_setfield(L, -2, "randomseed");
    lua_pop(L, 1);
    /* The string metatable (its __index is the string library) cannot be read. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    lua_pushcfunction(L, l_load);
    lua_setfield(L, g, "load");
    lua_getfield(L, g, "setmetatable");
    int raw_setmetatable = lua_gettop(L);
    lua_pushvalue(L, raw_setmetatable);
    lua_pushcclosure(L, l_setmetatable, 1);
    lua_setfield(L, g, "setmetatable");
    static const luaL_Reg overrides[] = {{"require", l_require},
                                         {"print", l_print},
                                         {"rawset", l_rawset},
                                         {"rawget", l_rawget},
                                         {"rawlen", l_rawlen},
                                         {"next", l_next},
                                         {"getmetatable", l_getmetatable},
                                         {NULL, NULL}};
    lua_pushvalue(L, g);
    luaL_setfuncs(L, overrides, 0);
    lua_pop(L, 1);

    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_LOADED);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_VIEWS);

    /* P: what the prelude builds on. */
    lua_createtable(L, 0, 32);
    int p = lua_gettop(L);
    new_mt(L, &KEY_ARRAY_MT, "herald.array");
    lua_setfield(L, p, "ARRAY_MT");
    new_mt(L, &KEY_BYTES_MT, "herald.bytes");
    lua_setfield(L, p, "BYTES_MT");
    new_mt(L, &KEY_INT64_MT, "herald.int64");
    lua_setfield(L, p, "INT64_MT");
    new_mt(L, &KEY_FN_MT, "herald.function");
    lua_setfield(L, p, "FN_MT");
    new_mt(L, &KEY_V_MT, "herald.validator");
    lua_setfield(L, p, "V_MT");
    new_mt(L, &KEY_ERROR_MT, "herald.error");
    lua_pushcfunction(L, err_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_setfield(L, p, "ERROR_MT");
    lua_pushlightuserdata(L, &SENTINEL_NULL);
    lua_setfield(L, p, "NULL");
    lua_pushlightuserdata(L, &SENTINEL_UNSET);
    lua_setfield(L, p, "UNSET");
    set_fn(L, "get", p_get);
    set_fn(L, "run", p_run);
    set_fn(L, "search", p_search);
    set_fn(L, "vector_search", p_vector_search);
    set_fn(L, "storage_upload_url", p_upload_url);
    set_fn(L, "schedule_after", p_run_after);
    set_fn(L, "schedule_at", p_run_at);
    set_fn(L, "schedule_cancel", p_cancel);
    set_fn(L, "storage_url", p_file_url);
    set_fn(L, "storage_meta", p_file_meta);
    set_fn(L, "storage_delete", p_file_delete);
    set_fn(L, "insert", p_insert);
    set_fn(L, "patch", p_patch);
    set_fn(L, "replace", p_replace);
    set_fn(L, "delete", p_delete);
    set_fn(L, "normalize_id", p_normalize_id);
    set_fn(L, "identity", p_identity);
    set_fn(L, "is_admin", p_is_admin);
    set_fn(L, "run_query", p_run_query);
    set_fn(L, "run_mutation", p_run_mutation);
    set_fn(L, "now_seconds", p_now_seconds);
    set_fn(L, "token", p_token);
    set_fn(L, "token_equal", p_token_equal);
    set_fn(L, "tag", p_tag);
    set_fn(L, "readonly", p_readonly);
    set_fn(L, "rawmeta", p_rawmeta);
    set_fn(L, "json_encode", p_json_encode);
    set_fn(L, "json_decode", p_json_decode);
    set_fn(L, "with_snapshot", p_with_snapshot);
    set_fn(L, "action_write", p_action_write);
    set_fn(L, "action_prepare", p_action_prepare);
    set_fn(L, "action_result", p_action_result);
    set_fn(L, "fetch", p_fetch);
    set_fn(L, "clock_ms", p_clock_ms);
    set_fn(L, "action_store", p_action_store);
    lua_pushlightuserdata(L, &KEY_CRONS);
    lua_setfield(L, p, "CRONS");
    lua_pushlightuserdata(L, &KEY_ROUTES);
    lua_setfield(L, p, "ROUTES");
    lua_getfield(L, os, "date");
    lua_setfield(L, p, "os_date");
    lua_getfield(L, os, "clock");
    lua_setfield(L, p, "os_clock");
    /* The prelude's own metatables have no __gc: it may skip the check. */
    lua_pushvalue(L, raw_setmetatable);
    lua_setfield(L, p, "setmetatable");
    lua_pushvalue(L, p);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_P);

    /* The prelude's globals: a private copy, so that nothing an app module
     * sets as a global at load time changes how the prelude works. */
    lua_newtable(L);
    int pe = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, g)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, pe);
    }
    if (luaL_loadbufferx(L, hd__fn_prelude, hd__fn_prelude_len, "=prelude", "t") != LUA_OK)
        return lua_error(L);
    lua_pushvalue(L, pe);
    lua_setupvalue(L, -2, 1);
    lua_pushvalue(L, p);
    lua_call(L, 1, 4); /* the views of herald, v and os, and fetch */
    lua_setfield(L, g, "fetch");
    lua_setfield(L, g, "os");
    lua_setfield(L, g, "v");
    lua_setfield(L, g, "herald");

    static const char *const libs[] = {"string", "table", "math", "utf8", "coroutine", NULL};
    for (size_t i = 0; libs[i]; i++) {
        lua_getfield(L, g, libs[i]);
        push_view(L, -1, libs[i]);
        lua_setfield(L, g, libs[i]);
        lua_pop(L, 1);
    }

    /* KEY_ENV: a closure whose _ENV is the base table until a call starts. */
    if (luaL_loadbufferx(L, "return", 6, "=env", "t") != LUA_OK) return lua_error(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_ENV);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, g);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_CALL_MT);
    return 0;
}

static void def_free(fndef *d)
{
    free(d->path);
    hd__validator_free(d->args);
    hd__validator_free(d->returns);
}

void hd__fnrt_free(hd_fnrt *rt)
{
    if (!rt) return;
    if (rt->L) {
        hd__fn_action_abandon(rt);
        lua_close(rt->L);
    }
    for (size_t i = 0; i < rt->ndefs; i++)
        def_free(&rt->defs[i]);
    for (size_t i = 0; i < rt->ncrons; i++) {
        free(rt->crons[i].name);
        free(rt->crons[i].cron);
        free(rt->crons[i].fn_path);
        herald_value_free(&rt->crons[i].args);
    }
    free(rt->crons);
    for (size_t i = 0; i < rt->nroutes; i++) {
        free(rt->routes[i].method);
        free(rt->routes[i].path);
        free(rt->routes[i].prefix);
        free(rt->routes[i].handler);
        for (size_t j = 0; j < rt->routes[i].nheaders; j++)
            free(rt->routes[i].headers[j]);
        free(rt->routes[i].headers);
    }
    free(rt->routes);
    free(rt->defs);
    free(rt->restore_slots);
    hd__fnbundle_unref(rt->bundle);
    free(rt);
}

static bool has_nul_string(const herald_value *v)
{
    switch (v->type) {
    case HERALD_STRING:
        return strlen(v->u.s.ptr) != v->u.s.len;
    case HERALD_ARRAY:
        for (size_t i = 0; i < v->u.arr.len; i++)
            if (has_nul_string(&v->u.arr.items[i])) return true;
        return false;
    case HERALD_OBJECT:
        for (size_t i = 0; i < v->u.obj.len; i++)
            if (has_nul_string(&v->u.obj.fields[i].val)) return true;
        return false;
    default:
        return false;
    }
}

/* A validator table at `idx` (or nil) into a herald_validator. */
static int load_validator(hd_fnrt *rt, int idx, const char *source, herald_validator **out,
                          herald_error *err)
{
    lua_State *L = rt->L;
    *out = NULL;
    if (lua_isnil(L, idx)) return 0;
    herald_value v;
    herald_error e = {0};
    conv cv = {&e, false};
    int rc = to_value(L, idx, NULL, &v, 0, &cv);
    if (!rc && has_nul_string(&v)) {
        /* Validators travel as JSON text, which cannot carry U+0000. */
        herald_value_free(&v);
        rc = herald_fail(&e, HERALD_EINVAL, "a literal string cannot contain a NUL byte");
    }
    if (rc) return herald_fail(err, HERALD_ESCHEMA, "%s: %s", source, e.message);
    char *text = herald_value_to_json(&v);
    herald_value_free(&v);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    rc = hd__validator_from_cjson(j, rt->schema, source, NULL, out, err);
    cJSON_Delete(j);
    return rc;
}

static int def_cmp(const void *a, const void *b)
{
    return strcmp(((const fndef *)a)->path, ((const fndef *)b)->path);
}

/* Registers definition `def` (a stack index) as function `path`; `file` names it in messages. */
static int add_def(hd_fnrt *rt, int def, const char *file, const char *path, size_t *cap,
                   herald_error *err)
{
    lua_State *L = rt->L;
    if (*cap == rt->ndefs) {
        *cap = *cap ? *cap * 2 : 32;
        fndef *nd = realloc(rt->defs, *cap * sizeof *nd);
        if (!nd) return herald_fail(err, HERALD_ENOMEM, "out of memory");
        rt->defs = nd;
    }
    fndef *d = &rt->defs[rt->ndefs];
    memset(d, 0, sizeof *d);
    d->handler = LUA_NOREF;
    if (strlen(path) + 1 > MAX_PATH_CHARS || !(d->path = strdup(path)))
        return herald_fail(err, HERALD_EINVAL, "%s: function name `%.64s` is too long", file, path);
    rt->ndefs++;
    lua_getfield(L, def, "kind");
    const char *kind = lua_tostring(L, -1);
    d->kind = !kind                       ? HD_FN_QUERY
              : !strcmp(kind, "mutation") ? HD_FN_MUTATION
              : !strcmp(kind, "action")   ? HD_FN_ACTION
                                          : HD_FN_QUERY;
    lua_getfield(L, def, "internal");
    d->internal = lua_toboolean(L, -1);
    lua_pop(L, 2);
    char source[400];
    snprintf(source, sizeof source, "%s: %s: args", file, d->path);
    lua_getfield(L, def, "args");
    int rc = load_validator(rt, lua_gettop(L), source, &d->args, err);
    lua_pop(L, 1);
    if (rc) return rc;
    snprintf(source, sizeof source, "%s: %s: returns", file, d->path);
    lua_getfield(L, def, "returns");
    rc = load_validator(rt, lua_gettop(L), source, &d->returns, err);
    lua_pop(L, 1);
    if (rc) return rc;
    lua_getfield(L, def, "handler");
    d->handler = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* A string field of the table at `t`, copied (NULL when absent). */
static int field_dup(lua_State *L, int t, const char *name, char **out)
{
    lua_getfield(L, t, name);
    *out = NULL;
    int ok = !lua_isstring(L, -1) || (*out = strdup(lua_tostring(L, -1)));
    lua_pop(L, 1);
    return ok ? 0 : HERALD_ENOMEM;
}

/* functions/crons.lua's herald.cronJobs() (at `t`): rt->crons. */
static int register_crons(hd_fnrt *rt, int t, const fnfile *f, herald_error *err)
{
    lua_State *L = rt->L;
    lua_getfield(L, t, "list");
    int list = lua_gettop(L);
    size_t n = (size_t)lua_rawlen(L, list);
    if (n > 1000) return herald_fail(err, HERALD_ELIMIT, "%s: more than 1,000 crons", f->name);
    if (n && !(rt->crons = calloc(n, sizeof *rt->crons)))
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, list, (lua_Integer)i + 1);
        int e = lua_gettop(L);
        hd_fncron *c = &rt->crons[rt->ncrons++];
        c->args = herald_undefined();
        if (field_dup(L, e, "name", &c->name) || field_dup(L, e, "cron", &c->cron) ||
            field_dup(L, e, "fn", &c->fn_path))
            return herald_fail(err, HERALD_ENOMEM, "out of memory");
        lua_getfield(L, e, "interval");
        c->interval = lua_tonumber(L, -1);
        lua_getfield(L, e, "args");
        herald_error e2 = {0};
        conv cv = {&e2, false};
        if (to_value(L, lua_gettop(L), NULL, &c->args, 0, &cv))
            return herald_fail(err, HERALD_ESCHEMA, "%s: cron \"%s\": args: %s", f->name, c->name,
                               e2.message);
        if (c->cron) {
            hd_cron parsed;
            if (hd__cron_parse(c->cron, &parsed, &e2))
                return herald_fail(err, HERALD_ESCHEMA, "%s: cron \"%s\": %s", f->name, c->name,
                                   e2.message);
        }
        lua_settop(L, list);
    }
    lua_pop(L, 1);
    return 0;
}

/* functions/http.lua's herald.httpRouter() (at `t`): rt->routes, their handlers "@http:<n>". */
static int register_routes(hd_fnrt *rt, int t, const fnfile *f, size_t *cap, herald_error *err)
{
    lua_State *L = rt->L;
    lua_getfield(L, t, "routes");
    int list = lua_gettop(L);
    size_t n = (size_t)lua_rawlen(L, list);
    if (n > 1000) return herald_fail(err, HERALD_ELIMIT, "%s: more than 1,000 routes", f->name);
    if (n && !(rt->routes = calloc(n, sizeof *rt->routes)))
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, list, (lua_Integer)i + 1);
        int e = lua_gettop(L);
        hd_fnroute *r = &rt->routes[rt->nroutes++];
        char handler[32];
        snprintf(handler, sizeof handler, "@http:%zu", i + 1);
        if (field_dup(L, e, "method", &r->method) || field_dup(L, e, "path", &r->path) ||
            field_dup(L, e, "prefix", &r->prefix) || !(r->handler = strdup(handler)))
            return herald_fail(err, HERALD_ENOMEM, "out of memory");
        for (size_t j = 0; j < i; j++) {
            const hd_fnroute *o = &rt->routes[j];
            if (!strcmp(o->method, r->method) && !o->path == !r->path &&
                !strcmp(o->path ? o->path : o->prefix, r->path ? r->path : r->prefix))
                return herald_fail(err, HERALD_ESCHEMA, "%s: two routes for %s %s", f->name,
                                   r->method, r->path ? r->path : r->prefix);
        }
        lua_getfield(L, e, "headers");
        size_t nh = lua_istable(L, -1) ? (size_t)lua_rawlen(L, -1) : 0;
        if (nh > 64)
            return herald_fail(err, HERALD_ELIMIT, "%s: a route reads 64 headers at most", f->name);
        if (nh && !(r->headers = calloc(nh, sizeof *r->headers)))
            return herald_fail(err, HERALD_ENOMEM, "out of memory");
        for (size_t j = 0; j < nh; j++) {
            lua_rawgeti(L, -1, (lua_Integer)j + 1);
            const char *h = lua_tostring(L, -1);
            if (!h || !(r->headers[r->nheaders] = strdup(h)))
                return herald_fail(err, HERALD_ESCHEMA, "%s: a route's headers are names", f->name);
            for (char *q = r->headers[r->nheaders++]; *q; q++)
                *q = (char)tolower((unsigned char)*q);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        lua_getfield(L, e, "handler");
        int rc = add_def(rt, lua_gettop(L), f->name, handler, cap, err);
        if (rc) return rc;
        lua_settop(L, list);
    }
    lua_pop(L, 1);
    return 0;
}

/* Registers the functions of the module table on top of the stack. */
static int register_module(hd_fnrt *rt, const fnfile *f, size_t *cap, herald_error *err)
{
    lua_State *L = rt->L;
    int mod = lua_gettop(L);
    if (lua_type(L, mod) != LUA_TTABLE) return 0; /* a library module with no functions */
    int rc = 0;
    bool crons = false, routes = false;
    if (!strcmp(f->module, "crons") || !strcmp(f->module, "http")) {
        lua_rawgetp(L, mod, &KEY_CRONS);
        lua_rawgetp(L, mod, &KEY_ROUTES);
        routes = lua_toboolean(L, -1) && !strcmp(f->module, "http");
        crons = lua_toboolean(L, -2) && !strcmp(f->module, "crons");
        lua_pop(L, 2);
    }
    if (crons) return register_crons(rt, mod, f, err);
    if (routes) return register_routes(rt, mod, f, cap, err);
    /* A module that returns one function definition exports it as `default`
     * (Convex's `export default query(...)`): a table {default = def}. */
    if (has_mt(L, mod, &KEY_FN_MT)) {
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, mod);
        lua_setfield(L, -2, "default");
        lua_replace(L, mod);
    }
    lua_pushnil(L);
    while (!rc && lua_next(L, mod)) {
        if (lua_type(L, -2) != LUA_TSTRING || !has_mt(L, -1, &KEY_FN_MT)) {
            lua_pop(L, 1);
            continue;
        }
        int def = lua_gettop(L);
        char path[MAX_PATH_CHARS + 1];
        int n = snprintf(path, sizeof path, "%s:%s", f->module, lua_tostring(L, -2));
        rc = n < 0 || (size_t)n >= sizeof path
                 ? herald_fail(err, HERALD_EINVAL, "%s: function name `%.64s` is too long", f->name,
                               lua_tostring(L, -2))
                 : add_def(rt, def, f->name, path, cap, err);
        lua_settop(L, def - 1);
    }
    lua_settop(L, mod);
    return rc;
}

typedef struct load_args {
    hd_fnrt *rt;
    const fnfile *f;
    size_t *cap;
    herald_error *err;
    int rc;
} load_args;

/* Runs a module and registers its functions, in protected mode. */
static int load_module(lua_State *L)
{
    load_args *la = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_pushcfunction(L, l_require);
    lua_pushstring(L, la->f->module);
    lua_call(L, 1, 1);
    la->rc = register_module(la->rt, la->f, la->cap, la->err);
    return 0;
}

/* Registers Herald's own functions ("@herald:..."), in protected mode. */
static int load_builtins(lua_State *L)
{
    load_args *la = lua_touserdata(L, 1);
    static const fnfile builtins = {.module = "@herald", .name = "prelude"};
    lua_settop(L, 0);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_P);
    lua_getfield(L, 1, "builtins");
    la->rc = register_module(la->rt, &builtins, la->cap, la->err);
    return 0;
}

/* ------------------------------------------------- freezing module state */

/*
 * Once every module has loaded, what the modules keep becomes read-only:
 * each table reachable from a module's value, from a global set at load
 * time or from an upvalue of the app's closures is replaced, wherever it
 * is referenced, by its view (KEY_VIEWS); module-level locals (upvalues)
 * are recorded in KEY_RESTORE, to be put back after every call. Herald's
 * own metatables and the prelude's closures are not walked. The walk uses
 * a work list, not recursion, so deep module state cannot overflow C.
 */
typedef struct freezer {
    hd_fnrt *rt;
    int views; /* KEY_VIEWS */
    int seen;  /* functions and upvalue ids walked already */
    int work;  /* originals and functions still to walk */
    lua_Integer nwork;
    int restore;       /* closure, value pairs */
    size_t cap;        /* of rt->restore_slots */
    const void *env;   /* the id of the _ENV upvalue every module shares */
    const char *where; /* the module being walked, for messages */
} freezer;

static void freeze_later(lua_State *L, freezer *fz, int idx)
{
    lua_pushvalue(L, idx);
    lua_rawseti(L, fz->work, ++fz->nwork);
}

/* Pushes what the value at `idx` becomes in frozen module state. */
static void freeze_value(lua_State *L, freezer *fz, int idx)
{
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 8, "module state");
    switch (lua_type(L, idx)) {
    case LUA_TTABLE:
        if (is_view(L, idx)) break;
        lua_pushvalue(L, idx);
        if (lua_rawget(L, fz->views) != LUA_TNIL) return;
        lua_pop(L, 1);
        push_view(L, idx, NULL);
        freeze_later(L, fz, idx);
        return;
    case LUA_TFUNCTION:
        lua_pushvalue(L, idx);
        if (lua_rawget(L, fz->seen) == LUA_TNIL) {
            lua_pushvalue(L, idx);
            lua_pushboolean(L, 1);
            lua_rawset(L, fz->seen);
            freeze_later(L, fz, idx);
        }
        lua_pop(L, 1);
        break;
    case LUA_TTHREAD:
        luaL_error(L,
                   "%s: a coroutine kept in module state would carry one call's state into the "
                   "next; create it inside the handler",
                   fz->where);
        break;
    default:
        break;
    }
    lua_pushvalue(L, idx);
}

static void freeze_table(lua_State *L, freezer *fz, int t)
{
    lua_newtable(L); /* keys that become views: old, new pairs */
    int moves = lua_gettop(L);
    lua_Integer nmoves = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        int k = lua_gettop(L) - 1, v = k + 1;
        freeze_value(L, fz, v);
        if (!lua_rawequal(L, -1, v)) {
            lua_pushvalue(L, k);
            lua_insert(L, -2);
            lua_rawset(L, t); /* an existing field: allowed while traversing */
        } else {
            lua_pop(L, 1);
        }
        if (lua_type(L, k) == LUA_TTABLE || lua_type(L, k) == LUA_TTHREAD ||
            lua_type(L, k) == LUA_TFUNCTION) {
            freeze_value(L, fz, k);
            if (!lua_rawequal(L, -1, k)) {
                lua_pushvalue(L, k);
                lua_rawseti(L, moves, ++nmoves);
                lua_rawseti(L, moves, ++nmoves);
            } else {
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    for (lua_Integer i = 1; i < nmoves; i += 2) {
        lua_rawgeti(L, moves, i + 1); /* the new key */
        lua_rawgeti(L, moves, i);
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        lua_pushvalue(L, -2);
        lua_pushnil(L);
        lua_rawset(L, t);
        lua_remove(L, -2);
        lua_rawset(L, t);
    }
    lua_settop(L, moves - 1);
    /* A metatable kept by the app (a class) is module state too; Herald's are not. */
    if (lua_getmetatable(L, t)) {
        if (lua_rawgetp(L, -1, &KEY_TAG) == LUA_TNIL) freeze_value(L, fz, -2);
        lua_settop(L, moves - 1);
    }
}

static void freeze_function(lua_State *L, freezer *fz, int f)
{
    hd_fnrt *rt = fz->rt;
    if (lua_iscfunction(L, f)) {
        /* Only a library's closures (coroutine.wrap, ...): nothing to view. */
        for (int n = 1; lua_getupvalue(L, f, n); n++) {
            if (lua_type(L, -1) == LUA_TTHREAD) freeze_value(L, fz, -1);
            lua_pop(L, 1);
        }
        return;
    }
    lua_Debug ar;
    lua_pushvalue(L, f);
    lua_getinfo(L, ">S", &ar);
    if (!strcmp(ar.source, "=prelude")) return;
    for (int n = 1; lua_getupvalue(L, f, n); n++) {
        void *id = lua_upvalueid(L, f, n);
        if (id == fz->env) {
            lua_pop(L, 1);
            continue;
        }
        freeze_value(L, fz, -1);
        if (!lua_rawequal(L, -1, -2))
            lua_setupvalue(L, f, n);
        else
            lua_pop(L, 1);
        lua_pop(L, 1);
        lua_pushlightuserdata(L, id);
        if (lua_rawget(L, fz->seen) == LUA_TNIL) {
            lua_pushlightuserdata(L, id);
            lua_pushboolean(L, 1);
            lua_rawset(L, fz->seen);
            if (rt->nrestore == fz->cap) {
                size_t cap = fz->cap ? fz->cap * 2 : 32;
                int *slots = realloc(rt->restore_slots, cap * sizeof *slots);
                if (!slots) luaL_error(L, "out of memory");
                rt->restore_slots = slots;
                fz->cap = cap;
            }
            lua_Integer i = (lua_Integer)rt->nrestore;
            lua_pushvalue(L, f);
            lua_rawseti(L, fz->restore, 2 * i + 1);
            lua_getupvalue(L, f, n);
            lua_rawseti(L, fz->restore, 2 * i + 2);
            rt->restore_slots[rt->nrestore++] = n;
        }
        lua_pop(L, 1);
    }
}

static void freeze_drain(lua_State *L, freezer *fz)
{
    while (fz->nwork > 0) {
        lua_rawgeti(L, fz->work, fz->nwork);
        lua_pushnil(L);
        lua_rawseti(L, fz->work, fz->nwork--);
        int x = lua_gettop(L);
        if (lua_type(L, x) == LUA_TTABLE)
            freeze_table(L, fz, x);
        else
            freeze_function(L, fz, x);
        lua_settop(L, x - 1);
    }
}

/* Freezes the state of every loaded module (runs in protected mode). */
static int freeze_modules(lua_State *L)
{
    hd_fnrt *rt = lua_touserdata(L, 1);
    lua_settop(L, 0);
    freezer fz = {.rt = rt, .views = 1, .seen = 2, .work = 3, .restore = 4};
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_VIEWS);
    lua_newtable(L);
    lua_newtable(L);
    lua_newtable(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_ENV);
    fz.env = lua_upvalueid(L, 5, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &KEY_LOADED);
    int loaded = 6;
    for (size_t i = 0; i < rt->bundle->n; i++) {
        const fnfile *f = &rt->bundle->files[i];
        fz.where = f->name;
        lua_getfield(L, loaded, f->module);
        freeze_value(L, &fz, -1);
        lua_setfield(L, loaded, f->module);
        lua_pop(L, 1);
        freeze_drain(L, &fz);
    }
    fz.where = "a global set by a module";
    lua_pushglobaltable(L);
    freeze_value(L, &fz, -1);
    lua_pop(L, 2);
    freeze_drain(L, &fz);
    lua_pushvalue(L, fz.restore);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEY_RESTORE);
    return 0;
}

int hd__fnrt_new(hd_fnbundle *bundle, const herald_schema *schema, const hd_fn_limits *limits,
                 hd_fnrt **out, herald_error *err)
{
    *out = NULL;
    hd_fnrt *rt = calloc(1, sizeof *rt);
    if (!rt) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    rt->bundle = hd__fnbundle_ref(bundle);
    rt->schema = schema;
    rt->limits.instructions =
        limits && limits->instructions ? limits->instructions : DEFAULT_INSTRUCTIONS;
    rt->limits.memory = limits && limits->memory ? limits->memory : DEFAULT_MEMORY;
    rt->limits.dev = limits && limits->dev;
    if (limits) {
        rt->limits.storage_key = limits->storage_key;
        rt->limits.storage_url = limits->storage_url;
        rt->limits.upload_seconds = limits->upload_seconds > 0 ? limits->upload_seconds : 3600;
        rt->limits.files_dir = limits->files_dir;
    }
    int rc = 0;
    lua_State *L = rt->L = lua_newstate(l_alloc, rt);
    if (!L) {
        hd__fnrt_free(rt);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    *(hd_fnrt **)lua_getextraspace(L) = rt;
    rt->co_ref = LUA_NOREF;
    lua_pushcfunction(L, setup);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        rc = herald_fail(err, HERALD_ENOMEM, "cannot start Lua: %s", lua_tostring(L, -1));
        goto fail;
    }
    size_t cap = 0;
    for (size_t i = 0; i < bundle->n && !rc; i++) {
        const fnfile *f = &bundle->files[i];
        lua_settop(L, 0);
        load_args la = {rt, f, &cap, err, 0};
        lua_pushcfunction(L, load_module);
        lua_pushlightuserdata(L, &la);
        budget_start(rt);
        int status = lua_pcall(L, 1, 0, 0);
        budget_end(rt);
        if (status != LUA_OK) {
            herald_value data = herald_undefined();
            rc = classify_error(rt, status, true, &data, err);
            herald_value_free(&data);
            if (rc == HERALD_EFUNCTION || rc == HERALD_ELIMIT) {
                /* Messages from Lua already name file and line; say that loading failed. */
                char msg[sizeof err->message];
                snprintf(msg, sizeof msg, "%s", err->message);
                rc = herald_fail(err, HERALD_ESCHEMA, "%s%s%s", strstr(msg, f->name) ? "" : f->name,
                                 strstr(msg, f->name) ? "" : ": ", msg);
            }
            break;
        }
        rc = la.rc;
    }
    lua_settop(L, 0);
    if (!rc) {
        load_args la = {rt, NULL, &cap, err, 0};
        lua_pushcfunction(L, load_builtins);
        lua_pushlightuserdata(L, &la);
        rc = lua_pcall(L, 1, 0, 0) != LUA_OK
                 ? herald_fail(err, HERALD_ENOMEM, "cannot load Herald's own functions: %s",
                               lua_tostring(L, -1))
                 : la.rc;
        lua_settop(L, 0);
    }
    if (rc) goto fail;
    lua_pushcfunction(L, freeze_modules);
    lua_pushlightuserdata(L, rt);
    budget_start(rt);
    int status = lua_pcall(L, 1, 0, 0);
    budget_end(rt);
    if (status != LUA_OK) {
        herald_value data = herald_undefined();
        classify_error(rt, status, true, &data, err);
        herald_value_free(&data);
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err->message);
        rc = herald_fail(err, HERALD_ESCHEMA, "%s", msg);
        goto fail;
    }
    lua_settop(L, 0);
    if (rt->ndefs > 1) qsort(rt->defs, rt->ndefs, sizeof *rt->defs, def_cmp);
    *out = rt;
    return 0;
fail:
    hd__fnrt_free(rt);
    return rc;
}

hd_fnbundle *hd__fnrt_bundle(const hd_fnrt *rt)
{
    return rt->bundle;
}

/* The app's own functions are listed; Herald's ("@herald:...", "@http:...") are not. */
static const fndef *listed(const hd_fnrt *rt, size_t i)
{
    for (size_t k = 0; k < rt->ndefs; k++) {
        if (rt->defs[k].path[0] == '@') continue;
        if (i-- == 0) return &rt->defs[k];
    }
    return NULL;
}

size_t hd__fnrt_count(const hd_fnrt *rt)
{
    size_t n = 0;
    for (size_t k = 0; k < rt->ndefs; k++)
        n += rt->defs[k].path[0] != '@';
    return n;
}

const char *hd__fnrt_path(const hd_fnrt *rt, size_t i)
{
    const fndef *d = listed(rt, i);
    return d ? d->path : NULL;
}

const char *hd__fn_kind_name(hd_fn_kind kind)
{
    return kind_name(kind);
}

/* ------------------------------------------- definitions, for `herald codegen` */

/*
 * Read by src/codegen.c, which writes TypeScript types from what each
 * function accepts and returns; calls never go through here.
 */
int hd__fnrt_def(const hd_fnrt *rt, size_t i, hd_fn_kind *kind, bool *internal,
                 const herald_validator **args, const herald_validator **returns)
{
    const fndef *d = listed(rt, i);
    if (!d) return HERALD_ENOTFOUND;
    if (kind) *kind = d->kind;
    if (internal) *internal = d->internal;
    if (args) *args = d->args;
    if (returns) *returns = d->returns;
    return 0;
}

size_t hd__fnrt_crons(const hd_fnrt *rt, const hd_fncron **out)
{
    *out = rt->crons;
    return rt->ncrons;
}

const hd_fnroute *hd__fnrt_route(const hd_fnrt *rt, const char *method, const char *path,
                                 bool *method_mismatch)
{
    const hd_fnroute *best = NULL;
    size_t best_len = 0;
    *method_mismatch = false;
    for (size_t i = 0; i < rt->nroutes; i++) {
        const hd_fnroute *r = &rt->routes[i];
        bool match =
            r->path ? !strcmp(r->path, path) : !strncmp(r->prefix, path, strlen(r->prefix));
        if (!match) continue;
        size_t len = r->path ? SIZE_MAX : strlen(r->prefix);
        if (strcmp(r->method, method)) {
            *method_mismatch = true;
            continue;
        }
        if (!best || len > best_len) {
            best = r;
            best_len = len;
        }
    }
    if (best) *method_mismatch = false;
    return best;
}
