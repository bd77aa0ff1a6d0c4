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

typedef enum hd_fn_kind { HD_FN_QUERY = 0, HD_FN_MUTATION = 1 } hd_fn_kind;

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
/* Number of registered functions; their paths, sorted ("module:name"). */
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

/* What a function is, without calling it. HERALD_ENOTFOUND if no such path. */
int hd__fn_kind(hd_fnrt *rt, const char *path, hd_fn_kind *kind, bool *internal);

typedef struct hd_fncall {
    const char *path;             /* normalised or not */
    const herald_value *args;     /* an object; NULL or undefined = {} */
    const herald_value *identity; /* the caller's identity object, or NULL */
    bool admin;                   /* admin key: may call internal functions */
    hd_fn_kind kind;              /* the kind the caller asks for */
    herald_txn *txn;              /* a snapshot (queries) or an open mutation */
    herald_read_set *rs;          /* queries: every read is appended; may be NULL */
    double now_ms;                /* ctx.now; 0 = the wall clock now */
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

#endif
