/*
 * Fuzz target for the replication log a replica applies (store.h,
 * "replication"; src/txn.c, herald_group_apply_log): bytes from the
 * cluster's stream. Each input is applied in a group of its own to a store
 * with the schema of tests/unit/test_replog.c (whose logs are the seeds),
 * then the group is dropped, as the writer drops a group whose record
 * failed. Errors are expected; crashes, leaks and out-of-bounds reads are
 * not. (tests/unit/test_replog.c commits corrupted logs that apply and
 * checks the store.)
 */
#include <stdint.h>

#include "fuzz_common.h"
#include "../unit/replog_schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static herald_store *store;
static char store_dir[] = "/tmp/herald-fuzz-replog-XXXXXX";

static void close_store(void)
{
    herald_store_close(store);
    store = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herald_error err = {0};
    if (!store) {
        herald_store_options opts = {.no_sync = true, .initial_map_size = 4 << 20};
        store = fz_store_new(store_dir, &opts, fz_schema(replog_schema_json), NULL, 0);
        atexit(close_store);
        fz_remove_dir(store_dir);
    }
    herald_group *g;
    if (herald_group_begin(store, &g, &err)) fz_die("group", &err);
    herald_group_apply_log(g, data, size, &err);
    herald_group_abort(g);
    herald_group_free(g);
    return 0;
}
