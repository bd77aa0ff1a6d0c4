/*
 * Herald error codes.
 *
 * Every Herald function that can fail returns 0 on success or one of the
 * negative codes below. Functions that take a `herald_error *` also write a
 * human-readable message there (when the pointer is not NULL); the message
 * names the table, field, document or file involved where there is one.
 * Codes are stable: they are part of the wire protocol (as their names,
 * see herald_errcode_name()) and never renumbered.
 */
#ifndef HERALD_ERROR_H
#define HERALD_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum herald_code {
    HERALD_OK = 0,
    HERALD_ENOMEM = -1,      /* out of memory */
    HERALD_EINVAL = -2,      /* malformed input: bad JSON, wrong type, bad argument */
    HERALD_ENOTFOUND = -3,   /* no such document, table, index or file */
    HERALD_EVALIDATION = -4, /* a document does not match its table's validator */
    HERALD_ELIMIT = -5,      /* a size, depth, count or read limit was exceeded */
    HERALD_ESCHEMA = -6,     /* the schema is invalid, or a change existing data violates */
    HERALD_EMAPFULL = -7,    /* the database reached its configured maximum size */
    HERALD_EIO = -8,         /* the disk failed (full disk, I/O error) */
    HERALD_EUNIQUE = -9,     /* unique() found more than one document */
    HERALD_ECORRUPT = -10,   /* stored data is not what Herald wrote */
    HERALD_EBUSY = -11,      /* the operation is not allowed in the current state */
    HERALD_ESTORE = -12,     /* any other storage engine failure */
    HERALD_EACCESS = -13,    /* the caller lacks the rights for this */
    HERALD_EFUNCTION = -14,  /* a server function raised an error */
    HERALD_ECONFLICT = -15,  /* an idempotency key was already used for another request */
};

/* A message buffer filled by failing calls. `code` repeats the return value. */
typedef struct herald_error {
    int code;
    char message[512];
} herald_error;

/* A static English description of `code`; never NULL. */
const char *herald_strerror(int code);

/* The stable wire name of `code` ("InvalidArgument", "ValidationError", ...). */
const char *herald_errcode_name(int code);

/*
 * Records `code` and a printf-style message in `err` (if not NULL) and
 * returns `code`, so that failing paths read `return herald_fail(err, ...)`.
 */
int herald_fail(herald_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
