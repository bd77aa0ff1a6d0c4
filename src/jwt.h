/* TEMPORARY local stand-in until the jwt branch is merged; not committed. */
#ifndef HD_JWT_H
#define HD_JWT_H
#include <stdbool.h>
#include <stddef.h>
#include "herald/error.h"
#include "herald/value.h"
typedef struct hd_auth hd_auth;
int hd__auth_load(const char *app_dir, hd_auth **out, herald_error *err);
void hd__auth_free(hd_auth *a);
size_t hd__auth_provider_count(const hd_auth *a);
int hd__auth_verify(const hd_auth *a, const char *token, double now, herald_value *identity,
                    herald_error *err);
#define HD_TOKEN_CHARS 43
int hd__token_new(char *out, herald_error *err);
bool hd__token_equal(const char *a, const char *b);
#endif
