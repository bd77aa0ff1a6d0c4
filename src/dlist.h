/*
 * Intrusive doubly-linked lists: a struct embeds an hd_link per list it
 * can be on, and the list keeps its head and tail. Every operation is O(1);
 * the server's bookkeeping (silent WebSockets, sync connections by quiet
 * time, connections with a Transition due) is lists like these, so that
 * nothing walks every connection.
 */
#ifndef HD_DLIST_H
#define HD_DLIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hd_link {
    struct hd_link *prev, *next;
    bool on; /* on a list */
} hd_link;

typedef struct hd_dlist {
    hd_link *head, *tail;
} hd_dlist;

/* The struct of type `type` whose member `member` is the link `l` (NULL stays NULL). */
#define HD_CONTAINER(l, type, member)                                                              \
    ((l) ? (type *)(void *)((char *)(l)-offsetof(type, member)) : (type *)NULL)

static inline void hd__dlist_unlink(hd_dlist *d, hd_link *l)
{
    if (!l->on) return;
    if (l->prev)
        l->prev->next = l->next;
    else
        d->head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        d->tail = l->prev;
    l->prev = l->next = NULL;
    l->on = false;
}

/* Puts `l` at the end of the list (moving it there if it is on it already). */
static inline void hd__dlist_push_back(hd_dlist *d, hd_link *l)
{
    if (d->tail == l) return;
    hd__dlist_unlink(d, l);
    l->prev = d->tail;
    l->next = NULL;
    if (d->tail)
        d->tail->next = l;
    else
        d->head = l;
    d->tail = l;
    l->on = true;
}

#endif
