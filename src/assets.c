/*
 * Finds the files herald answers from its binary (assets.h); files.c
 * writes them out. This module must never decide anything about paths that
 * are not in the table: everything else is the static folder's.
 */
#include <string.h>

#include "assets.h"

const hd__asset *hd__asset_find(const char *path, bool *overridable)
{
    /* The console is a folder to its users: /admin and /admin/ are its page. */
    if (!strcmp(path, "/admin") || !strcmp(path, "/admin/")) path = "/admin/index.html";
    for (size_t i = 0; i < hd__assets_count; i++) {
        if (strcmp(path, hd__assets[i].path)) continue;
        /* Only what is Herald's own is pinned; an app may bring its own icon. */
        if (overridable) *overridable = !strncmp(path, "/favicon", 8);
        return &hd__assets[i];
    }
    return NULL;
}
