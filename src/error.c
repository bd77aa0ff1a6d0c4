/*
 * Error codes, their names and messages. Names are part of the wire
 * protocol: never change one once released.
 */
#include <stdarg.h>
#include <stdio.h>

#include "herald/error.h"

static const struct {
    int code;
    const char *name;
    const char *text;
} codes[] = {
    {HERALD_OK, "Ok", "success"},
    {HERALD_ENOMEM, "OutOfMemory", "out of memory"},
    {HERALD_EINVAL, "InvalidArgument", "invalid argument"},
    {HERALD_ENOTFOUND, "NotFound", "not found"},
    {HERALD_EVALIDATION, "ValidationError", "document does not match the schema"},
    {HERALD_ELIMIT, "LimitExceeded", "limit exceeded"},
    {HERALD_ESCHEMA, "SchemaError", "invalid schema or schema change"},
    {HERALD_EMAPFULL, "DatabaseFull", "database reached its maximum size"},
    {HERALD_EIO, "StorageIOError", "disk I/O error"},
    {HERALD_EUNIQUE, "NotUnique", "more than one document matched"},
    {HERALD_ECORRUPT, "Corrupt", "stored data is inconsistent"},
    {HERALD_EBUSY, "Busy", "operation not allowed now"},
    {HERALD_ESTORE, "StorageError", "storage engine error"},
    {HERALD_EACCESS, "Unauthorized", "not allowed"},
    {HERALD_EFUNCTION, "FunctionError", "the server function raised an error"},
    {HERALD_ECONFLICT, "IdempotencyConflict",
     "the idempotency key was already used for another request"},
};

static int find(int code)
{
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i].code == code) return (int)i;
    return -1;
}

const char *herald_strerror(int code)
{
    int i = find(code);
    return i < 0 ? "unknown error" : codes[i].text;
}

const char *herald_errcode_name(int code)
{
    int i = find(code);
    return i < 0 ? "InternalError" : codes[i].name;
}

int herald_fail(herald_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}
