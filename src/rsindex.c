/*
 * The read-set index (rsindex.h): from a commit's written keys to the
 * subscriptions whose read sets contain them.
 *
 * It must never look at a range that cannot contain the key being matched
 * (per commit the work follows the matches, not the subscriptions), never
 * recurse deeper than the tree height, and never leave itself half-changed
 * when an allocation fails.
 *
 * Layout. Every distinct (index_id, lo, hi) range is one node of a single
 * AVL tree ordered by (index_id, lo, hi), an unbounded hi sorting last.
 * Each node also keeps the node of greatest (index_id, hi) in its subtree,
 * so a stabbing query for a key skips every subtree whose ranges all end
 * at or before the key, and every right subtree whose ranges all start
 * after it: it visits the search path plus the ancestors of the matches.
 * Comparing index ids first makes one tree serve every index: a range only
 * contains keys of its own index in that order.
 *
 * Owners and ranges are linked many-to-many by pairs of edges that know
 * each other's position (`back`), so unlinking one is a swap-remove in
 * both vectors, O(1) however many owners share a range. Owners are found
 * by id in an open-addressing hash table.
 *
 * Memory: the common case, one owner with a point range [k, k||0x00), is
 * one node holding the key bytes once (when lo is a prefix of hi only hi
 * is stored) with its single owner edge inline, plus one owner record with
 * its single range edge inline: about 130 bytes plus the key.
 */
#include "rsindex.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"

struct range;
struct owner;

/* One side of an owner-range link; `back` is the other side's index. */
typedef struct edge {
    union {
        struct range *range; /* in an owner's vector */
        struct owner *owner; /* in a range's vector */
    };
    uint32_t back;
} edge;

/* A vector of edges; with cap == 1 its only element is stored inline. */
typedef struct edges {
    union {
        edge one;
        edge *many;
    };
    uint32_t len, cap;
} edges;

typedef struct range {
    struct range *left, *right;
    struct range *max; /* the node of greatest (index_id, hi) in this subtree */
    uint64_t gen;      /* the last add or match call that visited this node */
    edges owners;
    uint32_t index_id;
    uint32_t lo_len, hi_len, hi_off; /* lo is bytes[0, lo_len), hi bytes[hi_off, +hi_len) */
    int8_t height;
    bool bounded; /* false: hi is unbounded */
    uint8_t bytes[];
} range;

typedef struct owner {
    uint64_t id;
    uint64_t gen; /* the last match call that reported this owner */
    edges ranges;
} owner;

struct hd_rsindex {
    range *root;
    size_t nranges;
    owner **table; /* open addressing, linear probing; NULL = free slot */
    size_t table_cap, nowners;
    uint64_t gen;
    uint64_t *hits; /* owners collected by the current match call */
    size_t nhits, hits_cap;
    size_t visited; /* nodes the last match visited */
    long fail_after;
};

/* A range as given, before it is stored. */
typedef struct probe {
    uint32_t index_id;
    const uint8_t *lo, *hi;
    size_t lo_len, hi_len;
    bool bounded;
} probe;

/* ---- allocation (with the failure injection used by tests) ---- */

static bool may_allocate(hd_rsindex *x)
{
    if (x->fail_after < 0) return true;
    if (x->fail_after == 0) return false;
    x->fail_after--;
    return true;
}

static void *xmalloc(hd_rsindex *x, size_t n)
{
    return may_allocate(x) ? malloc(n) : NULL;
}

static void *xrealloc(hd_rsindex *x, void *p, size_t n)
{
    return may_allocate(x) ? realloc(p, n) : NULL;
}

void hd__rsindex_fail_after(hd_rsindex *x, long n)
{
    x->fail_after = n < 0 ? -1 : n;
}

/* ---- edge vectors ---- */

static const edges EDGES_EMPTY = {.len = 0, .cap = 1};

static edge *edges_at(edges *v)
{
    return v->cap == 1 ? &v->one : v->many;
}

static const edge *edges_at_const(const edges *v)
{
    return v->cap == 1 ? &v->one : v->many;
}

static int edges_reserve(hd_rsindex *x, edges *v, size_t want)
{
    if (want <= v->cap) return 0;
    if (want > UINT32_MAX) return HERALD_ENOMEM;
    size_t cap = (size_t)v->cap * 2;
    if (cap < want) cap = want;
    if (cap < 4) cap = 4;
    if (cap > UINT32_MAX) cap = UINT32_MAX;
    if (v->cap == 1) {
        edge *many = xmalloc(x, cap * sizeof *many);
        if (!many) return HERALD_ENOMEM;
        if (v->len) many[0] = v->one;
        v->many = many;
    } else {
        edge *many = xrealloc(x, v->many, cap * sizeof *many);
        if (!many) return HERALD_ENOMEM;
        v->many = many;
    }
    v->cap = (uint32_t)cap;
    return 0;
}

/*
 * Gives back memory once a vector is a quarter full, so that an owner or a
 * range that once had many links does not keep their room. Positions do
 * not change, so the `back` indexes stay valid.
 */
static void edges_shrink(edges *v)
{
    if (v->cap == 1 || v->len > v->cap / 4) return;
    if (v->len <= 1) {
        edge *many = v->many;
        if (v->len) v->one = many[0];
        free(many);
        v->cap = 1;
        return;
    }
    edge *many = realloc(v->many, (size_t)(v->cap / 2) * sizeof *many);
    if (!many) return; /* keeping the larger block is harmless */
    v->many = many;
    v->cap /= 2;
}

static void edges_free(edges *v)
{
    if (v->cap != 1) free(v->many);
    *v = EDGES_EMPTY;
}

/* ---- key order ---- */

static int cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return (alen > blen) - (alen < blen);
}

static int cmp_u32(uint32_t a, uint32_t b)
{
    return (a > b) - (a < b);
}

static const uint8_t *range_lo(const range *r)
{
    return r->bytes;
}

static const uint8_t *range_hi(const range *r)
{
    return r->bytes + r->hi_off;
}

/* (index_id, lo, hi) of `p` against the node `r`; an unbounded hi is last. */
static int cmp_probe(const probe *p, const range *r)
{
    int c = cmp_u32(p->index_id, r->index_id);
    if (c) return c;
    c = cmp_bytes(p->lo, p->lo_len, range_lo(r), r->lo_len);
    if (c) return c;
    if (!p->bounded || !r->bounded) return (int)!p->bounded - (int)!r->bounded;
    return cmp_bytes(p->hi, p->hi_len, range_hi(r), r->hi_len);
}

static int cmp_nodes(const range *a, const range *b)
{
    probe p = {a->index_id, range_lo(a), range_hi(a), a->lo_len, a->hi_len, a->bounded};
    return cmp_probe(&p, b);
}

/* (index_id, hi) of `a` against that of `b`, an unbounded hi greatest. */
static int cmp_hi(const range *a, const range *b)
{
    int c = cmp_u32(a->index_id, b->index_id);
    if (c) return c;
    if (!a->bounded || !b->bounded) return (int)!a->bounded - (int)!b->bounded;
    return cmp_bytes(range_hi(a), a->hi_len, range_hi(b), b->hi_len);
}

/* True if (r.index_id, r.lo) <= (index_id, key). */
static bool lo_at_or_before(const range *r, uint32_t index_id, const uint8_t *key, size_t len)
{
    if (r->index_id != index_id) return r->index_id < index_id;
    return cmp_bytes(range_lo(r), r->lo_len, key, len) <= 0;
}

/* True if (r.index_id, r.hi) > (index_id, key). */
static bool hi_after(const range *r, uint32_t index_id, const uint8_t *key, size_t len)
{
    if (r->index_id != index_id) return r->index_id > index_id;
    return !r->bounded || cmp_bytes(range_hi(r), r->hi_len, key, len) > 0;
}

/* ---- the AVL tree ---- */

static int height(const range *r)
{
    return r ? r->height : 0;
}

static void update(range *r)
{
    int hl = height(r->left), hr = height(r->right);
    r->height = (int8_t)(1 + (hl > hr ? hl : hr));
    r->max = r;
    if (r->left && cmp_hi(r->left->max, r->max) > 0) r->max = r->left->max;
    if (r->right && cmp_hi(r->right->max, r->max) > 0) r->max = r->right->max;
}

static range *rotate_right(range *r)
{
    range *l = r->left;
    r->left = l->right;
    l->right = r;
    update(r);
    update(l);
    return l;
}

static range *rotate_left(range *r)
{
    range *l = r->right;
    r->right = l->left;
    l->left = r;
    update(r);
    update(l);
    return l;
}

static range *rebalance(range *r)
{
    update(r);
    int balance = height(r->left) - height(r->right);
    if (balance > 1) {
        if (height(r->left->left) < height(r->left->right)) r->left = rotate_left(r->left);
        return rotate_right(r);
    }
    if (balance < -1) {
        if (height(r->right->right) < height(r->right->left)) r->right = rotate_right(r->right);
        return rotate_left(r);
    }
    return r;
}

/* Inserts `n`, whose key is not in the tree yet. Cannot fail. */
static range *tree_insert(range *t, range *n)
{
    if (!t) {
        n->left = n->right = NULL;
        update(n);
        return n;
    }
    if (cmp_nodes(n, t) < 0)
        t->left = tree_insert(t->left, n);
    else
        t->right = tree_insert(t->right, n);
    return rebalance(t);
}

static range *tree_remove_min(range *t, range **min)
{
    if (!t->left) {
        *min = t;
        return t->right;
    }
    t->left = tree_remove_min(t->left, min);
    return rebalance(t);
}

/*
 * Unlinks the node `n` (which is in the tree). Nodes are relinked, never
 * copied into each other, so the edges pointing at other nodes stay valid;
 * every ancestor of `n` is updated on the way back, so no subtree maximum
 * points at `n` afterwards.
 */
static range *tree_remove(range *t, const range *n)
{
    if (t != n) {
        if (cmp_nodes(n, t) < 0)
            t->left = tree_remove(t->left, n);
        else
            t->right = tree_remove(t->right, n);
        return rebalance(t);
    }
    if (!t->left) return t->right;
    if (!t->right) return t->left;
    range *min;
    range *right = tree_remove_min(t->right, &min);
    min->left = t->left;
    min->right = right;
    return rebalance(min);
}

static range *tree_find(range *t, const probe *p)
{
    while (t) {
        int c = cmp_probe(p, t);
        if (c == 0) return t;
        t = c < 0 ? t->left : t->right;
    }
    return NULL;
}

static range *range_new(hd_rsindex *x, const probe *p)
{
    if (p->lo_len > UINT32_MAX || p->hi_len > UINT32_MAX) return NULL;
    /* A point range [k, k||0x00) and any range whose lo is a prefix of hi
     * store the bytes of hi alone. */
    bool shared = p->bounded && p->lo_len <= p->hi_len &&
                  (p->lo_len == 0 || memcmp(p->lo, p->hi, p->lo_len) == 0);
    size_t nbytes = shared ? p->hi_len : p->lo_len + (p->bounded ? p->hi_len : 0);
    range *r = xmalloc(x, sizeof *r + nbytes);
    if (!r) return NULL;
    *r = (range){.owners = EDGES_EMPTY,
                 .index_id = p->index_id,
                 .lo_len = (uint32_t)p->lo_len,
                 .hi_len = p->bounded ? (uint32_t)p->hi_len : 0,
                 .hi_off = shared ? 0 : (uint32_t)p->lo_len,
                 .bounded = p->bounded};
    if (shared) {
        if (p->hi_len) memcpy(r->bytes, p->hi, p->hi_len);
    } else {
        if (p->lo_len) memcpy(r->bytes, p->lo, p->lo_len);
        if (p->bounded && p->hi_len) memcpy(r->bytes + p->lo_len, p->hi, p->hi_len);
    }
    return r;
}

/* ---- owners by id ---- */

static size_t owner_slot(uint64_t id, size_t cap)
{
    /* splitmix64's finaliser: ids are often sequential. */
    id ^= id >> 30;
    id *= 0xbf58476d1ce4e5b9ULL;
    id ^= id >> 27;
    id *= 0x94d049bb133111ebULL;
    id ^= id >> 31;
    return (size_t)id & (cap - 1);
}

static owner *owner_find(const hd_rsindex *x, uint64_t id)
{
    if (!x->table_cap) return NULL;
    size_t mask = x->table_cap - 1;
    for (size_t i = owner_slot(id, x->table_cap); x->table[i]; i = (i + 1) & mask)
        if (x->table[i]->id == id) return x->table[i];
    return NULL;
}

static void table_put(owner **table, size_t cap, owner *o)
{
    size_t i = owner_slot(o->id, cap);
    while (table[i])
        i = (i + 1) & (cap - 1);
    table[i] = o;
}

/* Makes room for one more owner; the table stays at most half full. */
static int owner_reserve(hd_rsindex *x)
{
    if ((x->nowners + 1) * 2 <= x->table_cap) return 0;
    size_t cap = x->table_cap ? x->table_cap * 2 : 16;
    owner **table = xmalloc(x, cap * sizeof *table);
    if (!table) return HERALD_ENOMEM;
    memset(table, 0, cap * sizeof *table);
    for (size_t i = 0; i < x->table_cap; i++)
        if (x->table[i]) table_put(table, cap, x->table[i]);
    free(x->table);
    x->table = table;
    x->table_cap = cap;
    return 0;
}

/* Takes `o` (already unlinked from every range) out of the table, frees it. */
static void owner_delete(hd_rsindex *x, owner *o)
{
    size_t mask = x->table_cap - 1;
    size_t i = owner_slot(o->id, x->table_cap);
    while (x->table[i] != o)
        i = (i + 1) & mask;
    /* Backward-shift deletion: no tombstones, probes stay short. */
    x->table[i] = NULL;
    for (size_t j = (i + 1) & mask; x->table[j]; j = (j + 1) & mask) {
        size_t home = owner_slot(x->table[j]->id, x->table_cap);
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        x->table[i] = x->table[j];
        x->table[j] = NULL;
        i = j;
    }
    x->nowners--;
    edges_free(&o->ranges);
    free(o);
}

/* ---- links ---- */

/* Links `o` to `r`; both vectors have room. */
static void link(owner *o, range *r)
{
    edge *oe = edges_at(&o->ranges), *re = edges_at(&r->owners);
    oe[o->ranges.len] = (edge){.range = r, .back = r->owners.len};
    re[r->owners.len] = (edge){.owner = o, .back = o->ranges.len};
    o->ranges.len++;
    r->owners.len++;
}

/*
 * Removes the range side of `o`'s i-th edge (the owner side is the
 * caller's to drop) and deletes the range if it has no owner left.
 */
static void unlink_range_side(hd_rsindex *x, owner *o, uint32_t i)
{
    edge e = edges_at(&o->ranges)[i];
    range *r = e.range;
    edge *re = edges_at(&r->owners);
    uint32_t last = r->owners.len - 1;
    if (e.back != last) {
        re[e.back] = re[last];
        edges_at(&re[e.back].owner->ranges)[re[e.back].back].back = e.back;
    }
    r->owners.len = last;
    if (last) {
        edges_shrink(&r->owners);
        return;
    }
    x->root = tree_remove(x->root, r);
    x->nranges--;
    edges_free(&r->owners);
    free(r);
}

/* ---- the interface ---- */

int hd__rsindex_new(hd_rsindex **out)
{
    hd_rsindex *x = calloc(1, sizeof *x);
    if (!x) return HERALD_ENOMEM;
    x->fail_after = -1;
    *out = x;
    return 0;
}

static void free_tree(range *t)
{
    /* Iterative: rotate left children up so the walk needs no stack. */
    while (t) {
        if (t->left) {
            range *l = t->left;
            t->left = l->right;
            l->right = t;
            t = l;
            continue;
        }
        range *next = t->right;
        edges_free(&t->owners);
        free(t);
        t = next;
    }
}

void hd__rsindex_free(hd_rsindex *x)
{
    if (!x) return;
    free_tree(x->root);
    for (size_t i = 0; i < x->table_cap; i++) {
        if (!x->table[i]) continue;
        edges_free(&x->table[i]->ranges);
        free(x->table[i]);
    }
    free(x->table);
    free(x->hits);
    free(x);
}

static probe probe_of(const herald_read_range *rr)
{
    return (probe){rr->index_id,  rr->lo, rr->hi, rr->lo_len, rr->hi ? rr->hi_len : 0,
                   rr->hi != NULL};
}

static bool probe_empty(const probe *p)
{
    return p->bounded && cmp_bytes(p->lo, p->lo_len, p->hi, p->hi_len) >= 0;
}

/*
 * The new ranges are linked after the old ones, then the old ones are
 * unlinked: on failure only the new links are undone, and a range kept
 * from one run to the next is never deleted and re-created.
 */
int hd__rsindex_add(hd_rsindex *x, uint64_t id, const herald_read_set *rs)
{
    size_t nnew = 0;
    for (size_t i = 0; i < rs->len; i++) {
        probe p = probe_of(&rs->ranges[i]);
        nnew += !probe_empty(&p);
    }
    owner *o = owner_find(x, id);
    bool created = false;
    if (!o) {
        if (!nnew) return 0;
        if (owner_reserve(x)) return HERALD_ENOMEM;
        o = xmalloc(x, sizeof *o);
        if (!o) return HERALD_ENOMEM;
        *o = (owner){.id = id, .ranges = EDGES_EMPTY};
        table_put(x->table, x->table_cap, o);
        x->nowners++;
        created = true;
    }
    uint32_t nold = o->ranges.len;
    if (edges_reserve(x, &o->ranges, (size_t)nold + nnew)) goto fail;

    uint64_t gen = ++x->gen;
    for (size_t i = 0; i < rs->len; i++) {
        probe p = probe_of(&rs->ranges[i]);
        if (probe_empty(&p)) continue;
        range *r = tree_find(x->root, &p);
        if (r && r->gen == gen) continue; /* twice in this read set */
        if (!r) {
            r = range_new(x, &p);
            if (!r) goto fail;
            if (edges_reserve(x, &r->owners, 1)) {
                free(r);
                goto fail;
            }
            x->root = tree_insert(x->root, r);
            x->nranges++;
        } else if (edges_reserve(x, &r->owners, (size_t)r->owners.len + 1)) {
            goto fail;
        }
        r->gen = gen;
        link(o, r);
    }

    for (uint32_t i = 0; i < nold; i++)
        unlink_range_side(x, o, i);
    edge *oe = edges_at(&o->ranges);
    for (uint32_t i = nold; i < o->ranges.len; i++) {
        oe[i - nold] = oe[i];
        edges_at(&oe[i - nold].range->owners)[oe[i - nold].back].back = i - nold;
    }
    o->ranges.len -= nold;
    if (!o->ranges.len) {
        owner_delete(x, o);
        return 0;
    }
    edges_shrink(&o->ranges);
    return 0;

fail:
    while (o->ranges.len > nold)
        unlink_range_side(x, o, --o->ranges.len);
    if (created)
        owner_delete(x, o);
    else
        edges_shrink(&o->ranges);
    return HERALD_ENOMEM;
}

void hd__rsindex_remove(hd_rsindex *x, uint64_t id)
{
    owner *o = owner_find(x, id);
    if (!o) return;
    for (uint32_t i = 0; i < o->ranges.len; i++)
        unlink_range_side(x, o, i);
    o->ranges.len = 0;
    owner_delete(x, o);
}

static int collect(hd_rsindex *x, range *r)
{
    const edge *re = edges_at(&r->owners);
    for (uint32_t i = 0; i < r->owners.len; i++) {
        owner *o = re[i].owner;
        if (o->gen == x->gen) continue;
        if (x->nhits == x->hits_cap) {
            size_t cap = x->hits_cap ? x->hits_cap * 2 : 64;
            uint64_t *hits = xrealloc(x, x->hits, cap * sizeof *hits);
            if (!hits) return HERALD_ENOMEM;
            x->hits = hits;
            x->hits_cap = cap;
        }
        o->gen = x->gen;
        x->hits[x->nhits++] = o->id;
    }
    return 0;
}

/*
 * Collects the owners of every node of `t` containing the key. Recurses
 * only into left children, so the depth is at most the tree height.
 */
static int stab(hd_rsindex *x, range *t, uint32_t index_id, const uint8_t *key, size_t len)
{
    for (; t && hi_after(t->max, index_id, key, len); t = t->right) {
        x->visited++;
        if (t->left && stab(x, t->left, index_id, key, len)) return HERALD_ENOMEM;
        /* Every node to the right starts at or after this one. */
        if (!lo_at_or_before(t, index_id, key, len)) break;
        if (t->gen != x->gen && hi_after(t, index_id, key, len)) {
            t->gen = x->gen;
            if (collect(x, t)) return HERALD_ENOMEM;
        }
    }
    return 0;
}

static int stab_keys(hd_rsindex *x, const herald_write_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (stab(x, x->root, keys[i].index_id, keys[i].key, keys[i].key_len)) return HERALD_ENOMEM;
    return 0;
}

int hd__rsindex_match(hd_rsindex *x, const herald_write_set *const *ws, size_t nws,
                      void (*fn)(void *ctx, uint64_t owner), void *ctx)
{
    if (!x->root) {
        x->visited = 0;
        return 0;
    }
    x->gen++;
    x->nhits = 0;
    x->visited = 0;
    for (size_t i = 0; i < nws; i++) {
        if (stab_keys(x, ws[i]->removed, ws[i]->nremoved) ||
            stab_keys(x, ws[i]->added, ws[i]->nadded))
            return HERALD_ENOMEM;
    }
    /* Detach the hits so that `fn` may call in again (even match). */
    uint64_t *hits = x->hits;
    size_t nhits = x->nhits, cap = x->hits_cap;
    x->hits = NULL;
    x->nhits = x->hits_cap = 0;
    for (size_t i = 0; i < nhits; i++)
        fn(ctx, hits[i]);
    if (!x->hits) {
        x->hits = hits;
        x->hits_cap = cap;
    } else {
        free(hits);
    }
    return 0;
}

size_t hd__rsindex_count(const hd_rsindex *x)
{
    return x->nranges;
}

size_t hd__rsindex_owners(const hd_rsindex *x)
{
    return x->nowners;
}

size_t hd__rsindex_visited(const hd_rsindex *x)
{
    return x->visited;
}

/* ---- invariants, for tests ---- */

/* Checks the subtree `t`; returns its node count or -1. */
static long check_tree(const range *t, const range **prev)
{
    if (!t) return 0;
    long nl = check_tree(t->left, prev);
    if (nl < 0) return -1;
    if (*prev && cmp_nodes(*prev, t) >= 0) return -1;
    *prev = t;
    if (t->bounded && cmp_bytes(range_lo(t), t->lo_len, range_hi(t), t->hi_len) >= 0) return -1;
    long nr = check_tree(t->right, prev);
    if (nr < 0) return -1;
    int hl = height(t->left), hr = height(t->right);
    if (t->height != 1 + (hl > hr ? hl : hr) || hl - hr > 1 || hr - hl > 1) return -1;
    const range *max = t;
    if (t->left && cmp_hi(t->left->max, max) > 0) max = t->left->max;
    if (t->right && cmp_hi(t->right->max, max) > 0) max = t->right->max;
    if (cmp_hi(max, t->max) != 0) return -1;
    if (t->owners.len == 0 || t->owners.len > t->owners.cap) return -1;
    const edge *re = edges_at_const(&t->owners);
    for (uint32_t i = 0; i < t->owners.len; i++) {
        const owner *o = re[i].owner;
        if (re[i].back >= o->ranges.len) return -1;
        const edge *oe = &edges_at_const(&o->ranges)[re[i].back];
        if (oe->range != t || oe->back != i) return -1;
        if (t->owners.len <= 64)
            for (uint32_t j = 0; j < i; j++)
                if (re[j].owner == o) return -1;
    }
    return nl + 1 + nr;
}

int hd__rsindex_check(const hd_rsindex *x)
{
    const range *prev = NULL;
    long n = check_tree(x->root, &prev);
    if (n < 0 || (size_t)n != x->nranges) return -1;
    size_t nowners = 0;
    for (size_t i = 0; i < x->table_cap; i++) {
        const owner *o = x->table[i];
        if (!o) continue;
        nowners++;
        if (owner_find(x, o->id) != o) return -1;
        if (o->ranges.len == 0 || o->ranges.len > o->ranges.cap) return -1;
        const edge *oe = edges_at_const(&o->ranges);
        for (uint32_t j = 0; j < o->ranges.len; j++) {
            const range *r = oe[j].range;
            if (oe[j].back >= r->owners.len) return -1;
            const edge *re = &edges_at_const(&r->owners)[oe[j].back];
            if (re->owner != o || re->back != j) return -1;
        }
    }
    if (nowners != x->nowners || (x->table_cap && nowners * 2 > x->table_cap)) return -1;
    return 0;
}
