/*
 * Server functions: an app's `functions/[FOLDER/...]NAME.lua` modules, loaded into a
 * sandboxed Lua 5.4 state, and the calls into them (docs/functions.md).
 *
 * A bundle is the text of every function file, read once from the app
 * folder; a runtime is one Lua state built from a bundle. A runtime belongs
 * to one thread: the event loop runs query functions in its own, the writer
 * thread runs mutations in another built from the same bundle. A reload
 * reads a new bundle; a runtime is only ever replaced by one that loaded
 * completely, so a broken file never takes the previous version down.
 *
 * Caveats
 * - Lua states are not thread-safe: never call into one runtime from two
 *   threads. Bundles are immutable and reference counted; share them freely.
 * - Every call runs with an instruction and a memory budget; a function that
 *   exceeds one fails with HERALD_ELIMIT and the runtime stays usable.
 * - One call cannot change what a later call on the same runtime sees: each
 *   call gets its own globals, the libraries and `herald` are read-only,
 *   and once every module has loaded the tables the modules keep are
 *   read-only too; module-level locals are put back after every call.
 * - Values that cross into Lua are copies: results are new herald_value
 *   trees owned by the caller.
 */
#ifndef HD_FN_H
#define HD_FN_H

#include <stdbool.h>
#include <stdint.h>

#include "herald/error.h"
#include "herald/schema.h"
#include "herald/query.h"
#include "herald/store.h"

typedef struct hd_fnbundle hd_fnbundle;
typedef struct hd_fnrt hd_fnrt;

typedef enum hd_fn_kind { HD_FN_QUERY = 0, HD_FN_MUTATION = 1, HD_FN_ACTION = 2 } hd_fn_kind;

struct hd_fetch_request;
struct hd_fetch_response;
struct hd_wreq;

typedef struct hd_fn_limits {
    uint64_t instructions; /* per top-level call, nested calls included; 0 = 50 million */
    size_t memory;         /* bytes a call may add to its state; 0 = 64 MiB */
    bool dev;              /* `herald serve --dev`: every caller sees where an error was raised */
    /* File storage (ctx.storage, docs/functions.md "Files"): the key of the URL tokens
     * (HD_BLOB_KEY_BYTES, owned by the server) and the public URL they start with
     * ("http://host:port"); NULL: ctx.storage's URLs fail. */
    const uint8_t *storage_key;
    const char *storage_url;
    double upload_seconds; /* how long an upload URL is valid; 0 = 1 h */
    const char *files_dir; /* where ctx.storage:store in actions writes (DATA/files); NULL: none */
} hd_fn_limits;

/*
 * Reads every `<app_dir>/functions/[FOLDER/...]NAME.lua` into a new bundle
 * (reference count 1): functions/folder/file.lua is module "folder/file".
 * Each folder and module name is letters, digits and _ (HERALD_EINVAL
 * otherwise), at most 7 folders deep; hidden entries are skipped and
 * symbolic links to folders are not followed. A missing folder gives an
 * empty bundle. Fails with HERALD_ELIMIT for a file over 4 MiB, more than
 * 1,000 files, or folders nested deeper.
 */
int hd__fnbundle_read(const char *app_dir, hd_fnbundle **out, herald_error *err);
hd_fnbundle *hd__fnbundle_ref(hd_fnbundle *b);
void hd__fnbundle_unref(hd_fnbundle *b);
size_t hd__fnbundle_count(const hd_fnbundle *b);

/*
 * Builds a runtime from `bundle`: runs every module's top level, registers
 * the functions it returns, then freezes what the modules keep (see the
 * caveats). `schema` must outlive the runtime. A syntax or load error
 * names the file and line ("functions/videos.lua:12: unexpected symbol
 * near 'end'"); a coroutine kept in module state fails with HERALD_ESCHEMA.
 */
int hd__fnrt_new(hd_fnbundle *bundle, const herald_schema *schema, const hd_fn_limits *limits,
                 hd_fnrt **out, herald_error *err);
void hd__fnrt_free(hd_fnrt *rt);
/* The bundle the runtime was built from (borrowed). */
hd_fnbundle *hd__fnrt_bundle(const hd_fnrt *rt);
/* Number of the app's functions; their paths, sorted ("module:name"). Herald's own
 * (actions' writes "@herald:...", HTTP routes' handlers "@http:<n>") are not counted. */
size_t hd__fnrt_count(const hd_fnrt *rt);
const char *hd__fnrt_path(const hd_fnrt *rt, size_t i);
/*
 * What function i (in the order of hd__fnrt_path) is: its kind, whether it
 * is internal, and its `args` and `returns` validators (NULL where the
 * definition has none: any object, anything). The validators are owned by
 * the runtime and valid until hd__fnrt_free(). HERALD_ENOTFOUND if i is out
 * of range.
 */
int hd__fnrt_def(const hd_fnrt *rt, size_t i, hd_fn_kind *kind, bool *internal,
                 const herald_validator **args, const herald_validator **returns);

/*
 * Normalises a client's function path into `out`: "videos:getJobById",
 * "videos.js:getJobById" and "videos.ts:getJobById" name the same
 * function; a path without ':' names the module's `default`. Returns
 * HERALD_EINVAL for an empty or malformed path.
 */
int hd__fn_path_normalize(const char *path, char *out, size_t size, herald_error *err);

/* "query", "mutation" or "action". */
const char *hd__fn_kind_name(hd_fn_kind kind);

/* What a function is, without calling it. HERALD_ENOTFOUND if no such path. */
int hd__fn_kind(hd_fnrt *rt, const char *path, hd_fn_kind *kind, bool *internal);

typedef struct hd_fncall {
    const char *path;             /* normalised or not */
    const herald_value *args;     /* an object; NULL or undefined = {} */
    const herald_value *identity; /* the caller's identity object, or NULL */
    bool admin;                   /* admin key: may call internal functions */
    bool internal;       /* another function calls: internal ones too, without admin rights */
    hd_fn_kind kind;     /* the kind the caller asks for */
    herald_txn *txn;     /* a snapshot (queries) or an open mutation */
    herald_read_set *rs; /* queries: every read is appended; may be NULL */
    double now_ms;       /* ctx.now; 0 = the wall clock now */
    /*
     * A query still running when the calling thread's CPU time
     * (CLOCK_THREAD_CPUTIME_ID, seconds; 0: never) reaches this stops and
     * fails with HERALD_EBUSY, *yielded set: the caller runs it again where
     * it may take long (the evaluator threads). CPU time, not the wall
     * clock: a call the scheduler merely paused is not slow.
     */
    double yield_after;
    bool *yielded;
    /*
     * Pagination's journal (docs/queries.md, "Live pages"): the end cursor
     * a subscription's page was fixed at by its first run (NULL: none yet).
     * paginate() without an endCursor of its own stops there. When
     * journal_out is not NULL it receives (malloc'd) the end cursor of the
     * run's first paginate() call, fixed or given, or NULL if it made none.
     */
    const char *journal;
    char **journal_out;
} hd_fncall;

/*
 * Calls a function. On success *result is its return value (null when it
 * returns nothing). On failure the code says what kind of failure
 * (HERALD_ENOTFOUND, HERALD_EVALIDATION for arguments or return values,
 * HERALD_ELIMIT, HERALD_EFUNCTION for an error the function raised, or the
 * code of a failing database call) and *error_data holds the data of a
 * herald.error{...} (undefined otherwise; the caller frees it either way).
 * An error the function raised as a string names the file and line it was
 * raised at only for the admin (`call->admin`) or a runtime built with
 * `limits->dev`; other callers get the message alone ("boom", not
 * "functions/videos.lua:12: boom"). A failed mutation's writes must be
 * rolled back by the caller (abort the mutation); nothing here commits.
 */
int hd__fn_call(hd_fnrt *rt, const hd_fncall *call, herald_value *result, herald_value *error_data,
                herald_error *err);
/*
 * When set, told of every call hd__fn_call() ran (not of one refused before
 * it started, nor of a query that yielded to run again elsewhere): the
 * function's own path, its kind, the call's code and its wall-clock time.
 * Called on the thread that ran the call, so it must be thread-safe. Set
 * it before any thread calls functions and clear it after they stopped.
 */
extern void (*hd__fn_observer)(const char *path, hd_fn_kind kind, int rc, double seconds);

/* ---- actions (docs/functions.md, "Actions") ----
 *
 * An action is no transaction: it runs as a coroutine on a runtime of its
 * own (one action at a time per runtime), and stops whenever it waits for
 * something outside: a fetch() or a write (ctx.runMutation, the scheduler,
 * ctx.storage's writes). The caller does the waiting (action.c) and
 * resumes it with the outcome, possibly from another thread; the runtime
 * is never used by two threads at once. Reads (ctx.runQuery,
 * ctx.vectorSearch, ctx.storage's reads) run at once, each on a snapshot
 * of its own taken from `store`.
 */

/* What a stopped action waits for. */
typedef enum hd_act_wait {
    HD_ACT_DONE = 0, /* finished: the outcome is in the hd__fn_action_* return values */
    HD_ACT_FETCH,    /* step.fetch: an outgoing HTTP request */
    HD_ACT_WRITE,    /* step.write: a request for the writer (a mutation) */
} hd_act_wait;

typedef struct hd_act_step {
    hd_act_wait wait;
    struct hd_fetch_request *fetch; /* HD_ACT_FETCH: taken by the caller */
    struct hd_wreq *write;          /* HD_ACT_WRITE: taken by the caller */
    double timeout;                 /* seconds the action has left (its wall-clock limit) */
} hd_act_step;

typedef struct hd_actcall {
    const char *path;
    const herald_value *args;
    const herald_value *identity;
    bool admin;
    bool internal; /* internal actions may run (the scheduler, crons, other functions) */
    herald_store *store;
    double seconds; /* wall-clock limit; 0: 600 */
    /* An HTTP route's handler (herald.httpAction): `request` is the request
     * object the handler gets (docs/functions.md, "HTTP routes"), the result
     * is its response. `path` is then the route's handler name. */
    const herald_value *request;
} hd_actcall;

/*
 * Starts an action on `rt`. Returns 0 with *step telling what it waits
 * for; when step->wait is HD_ACT_DONE, *result (or the failure: a non-zero
 * return, *error_data, *err as for hd__fn_call) is its outcome. Until an
 * action is done nothing else may run on the runtime.
 */
int hd__fn_action_start(hd_fnrt *rt, const hd_actcall *call, hd_act_step *step,
                        herald_value *result, herald_value *error_data, herald_error *err);
/* Resumes a stopped action with the response it waited for (taken). */
int hd__fn_action_fetched(hd_fnrt *rt, struct hd_fetch_response *resp, hd_act_step *step,
                          herald_value *result, herald_value *error_data, herald_error *err);
/* Resumes a stopped action with its write answered (r's rc, result, error; r is the caller's). */
int hd__fn_action_written(hd_fnrt *rt, struct hd_wreq *r, hd_act_step *step, herald_value *result,
                          herald_value *error_data, herald_error *err);
/* Ends a stopped action without resuming it (the server stops); the runtime is free again. */
void hd__fn_action_abandon(hd_fnrt *rt);

/*
 * The crons of functions/crons.lua (docs/functions.md, "Crons"): `n` of
 * them, each a name, a schedule (a cron expression, or an interval in ms),
 * the function to run and its arguments. Owned by the runtime.
 */
typedef struct hd_fncron {
    char *name;
    char *cron;      /* a cron expression (hd__cron_parse), or NULL: */
    double interval; /* ms between runs */
    char *fn_path;
    herald_value args;
} hd_fncron;
size_t hd__fnrt_crons(const hd_fnrt *rt, const hd_fncron **out);

/*
 * The routes of functions/http.lua (docs/functions.md, "HTTP routes"): a
 * method and an exact path or a prefix, each to a herald.httpAction
 * handler known by `handler` (the path hd_actcall runs), and the headers
 * outside HTTP's standard set the handler reads (`headers`, lower-case).
 */
typedef struct hd_fnroute {
    char *method;
    char *path;   /* exact, or NULL: */
    char *prefix; /* every path that starts with it */
    char *handler;
    char **headers;
    size_t nheaders;
} hd_fnroute;
/* The route for a request, or NULL: the longest prefix wins when no exact path matches. */
const hd_fnroute *hd__fnrt_route(const hd_fnrt *rt, const char *method, const char *path,
                                 bool *method_mismatch);

#endif
