/*
 * The schema of the replication log's tests: tests/unit/test_replog.c makes
 * its logs with it, and tests/fuzz/fuzz_replog.c applies its seeds (those
 * logs) to a store with it, so that their table numbers agree.
 */
#ifndef HD_REPLOG_SCHEMA_H
#define HD_REPLOG_SCHEMA_H

static const char replog_schema_json[] =
    "{\"tables\":{"
    "\"notes\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "  \"title\":{\"type\":\"string\"},\"n\":{\"type\":\"number\"},"
    "  \"tags\":{\"type\":\"array\",\"optional\":true,\"items\":{\"type\":\"string\"}}}},"
    "  \"indexes\":[{\"name\":\"by_n\",\"fields\":[\"n\"]},"
    "             {\"name\":\"by_title\",\"fields\":[\"title\",\"n\"]}]},"
    "\"people\":{\"document\":{\"type\":\"any\"},"
    "  \"indexes\":[{\"name\":\"by_name\",\"fields\":[\"name\"]}]}}}";

#endif
