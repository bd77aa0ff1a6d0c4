/*
 * bench_blobs: where the bytes of stored files should live (docs/storage.md,
 * "Files"), measured on the machine it runs on, with the same durability
 * on both sides.
 *
 * (a) Files in a folder, as Herald stores them: each file is written to a
 *     temporary name through Herald's own blobs.c (64 KiB writes, SHA-256
 *     computed on the way, as an upload is), fsynced, and renamed to its
 *     id with the folder fsynced (hd__blob_place). Herald then commits the
 *     file's `_storage` row durably; that commit is timed separately (a
 *     raw LMDB put of a 120-byte row and a synced commit), so "(a)+row" is
 *     what an upload costs in all. Herald's writer thread does only part
 *     of it (the bytes are written as they arrive, before the writer sees
 *     the upload): from the file's fsync to the row's commit, reported as
 *     the writer's time per file, beside (b), where the writer does all.
 * (b) A value in LMDB: the same bytes (SHA-256 computed too) put under a
 *     20-byte id with mdb_put in one write transaction per file, committed
 *     with sync (the row would ride in the same commit, so it costs
 *     nothing more).
 *
 * Then both sides read every file back: (a) open, read in 64 KiB chunks,
 * close; (b) a read transaction, mdb_get, a copy of the value out, end of
 * transaction. Reads are timed warm (just written, in the page cache) and
 * cold (the pages dropped first with posix_fadvise(DONTNEED); on a virtual
 * machine the host may still cache them). Space: the LMDB map's pages in
 * use and data.mdb's size after the writes and after deleting every value,
 * beside the files' allocated blocks.
 *
 * Sizes 1 KiB, 64 KiB and 1 MiB by default, --files of each, --repeat
 * rounds in fresh folders (the figures are medians of the rounds; in each
 * round (a) and (b) alternate which goes first). Results go to stdout as
 * markdown tables. It fsyncs on purpose: never a test.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobs.h"

#define BENCH_NAME "bench_blobs"
#include "bench_util.h"

#define CHUNK     ((size_t)64 * 1024)
#define ROW_BYTES 120
#define MAX_SIZES 8
#define MAX_ROUND 16

typedef struct config {
    const char *dir;
    size_t files;
    size_t sizes[MAX_SIZES]; /* bytes */
    size_t nsizes;
    int repeat;
} config;

/* One round's figures for one size (seconds for all files, bytes of space). */
typedef struct round {
    double file_write, row_commit, file_and_row, lmdb_write;
    double writer_share; /* (a): from the file's fsync to its row's commit */
    double file_warm, lmdb_warm, file_cold, lmdb_cold;
    double map_used, map_file, map_after_delete, file_blocks;
} round;

static void die_mdb(const char *what, int rc)
{
    fprintf(stderr, "%s: %s: %s\n", BENCH_NAME, what, mdb_strerror(rc));
    exit(1);
}

static void die_errno(const char *what, const char *path)
{
    fprintf(stderr, "%s: %s %s: %s\n", BENCH_NAME, what, path, strerror(errno));
    exit(1);
}

/* The bytes of file `i`: shared random bytes with the file number in front, so each differs. */
static void file_bytes(uint8_t *buf, size_t size, size_t i)
{
    memcpy(buf, &i, size < sizeof i ? size : sizeof i);
}

/* A Herald-style id for file `i`: 32 characters of base32. */
static void file_id(size_t i, char id[HERALD_ID_CHARS + 1])
{
    static const char digits[] = "0123456789abcdefghjkmnpqrstvwxyz";
    uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ULL + 1;
    for (int k = 0; k < HERALD_ID_CHARS; k++) {
        id[k] = digits[(x >> ((k * 5) % 60)) & 31];
        if (k % 12 == 11) x = x * 6364136223846793005ULL + i;
    }
    id[HERALD_ID_CHARS] = 0;
}

static void sha256(const uint8_t *p, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

static MDB_env *env_open(const char *dir, size_t map)
{
    MDB_env *env;
    int rc;
    if ((rc = mdb_env_create(&env))) die_mdb("env_create", rc);
    if ((rc = mdb_env_set_mapsize(env, map))) die_mdb("set_mapsize", rc);
    if ((rc = mdb_env_open(env, dir, MDB_NOTLS, 0600))) die_mdb("env_open", rc);
    return env;
}

static void drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* (a): the files through blobs.c, and each one's row committed durably in `rows`. */
static void write_files(const char *files, MDB_env *rows, uint8_t *buf, size_t size, size_t n,
                        round *r)
{
    MDB_dbi dbi;
    MDB_txn *txn;
    int rc;
    if ((rc = mdb_txn_begin(rows, NULL, 0, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) ||
        (rc = mdb_txn_commit(txn)))
        die_mdb("rows", rc);
    for (size_t i = 0; i < n; i++) {
        char id[HERALD_ID_CHARS + 1], sha[65];
        herald_error err = {0};
        hd_blob_writer w;
        file_id(i, id);
        file_bytes(buf, size, i);
        double t0 = now_s();
        if ((rc = hd__blob_begin(files, &w, &err))) die_herald("blob_begin", rc, &err);
        for (size_t off = 0; off < size; off += CHUNK) {
            size_t k = size - off < CHUNK ? size - off : CHUNK;
            if ((rc = hd__blob_write(&w, buf + off, k, &err))) die_herald("blob_write", rc, &err);
        }
        double tw = now_s();
        if (fsync(w.fd) != 0) die_errno("fsync", w.path);
        if ((rc = hd__blob_finish(&w, sha, &err))) die_herald("blob_finish", rc, &err);
        if ((rc = hd__blob_place(w.path, id, &err))) die_herald("blob_place", rc, &err);
        double t1 = now_s();
        uint8_t row[ROW_BYTES];
        memset(row, 'r', sizeof row);
        memcpy(row, sha, 64);
        MDB_val k = {HERALD_ID_CHARS, id}, v = {sizeof row, row};
        if ((rc = mdb_txn_begin(rows, NULL, 0, &txn)) || (rc = mdb_put(txn, dbi, &k, &v, 0)) ||
            (rc = mdb_txn_commit(txn)))
            die_mdb("row commit", rc);
        double t2 = now_s();
        r->file_write += t1 - t0;
        r->row_commit += t2 - t1;
        r->writer_share += t2 - tw;
    }
}

/* (b): the bytes as LMDB values, one durable commit each. */
static void write_values(MDB_env *env, uint8_t *buf, size_t size, size_t n, round *r)
{
    MDB_dbi dbi;
    MDB_txn *txn;
    int rc;
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) ||
        (rc = mdb_txn_commit(txn)))
        die_mdb("values", rc);
    for (size_t i = 0; i < n; i++) {
        char id[HERALD_ID_CHARS + 1];
        uint8_t digest[32];
        file_id(i, id);
        file_bytes(buf, size, i);
        double t0 = now_s();
        sha256(buf, size, digest);
        MDB_val k = {HERALD_ID_CHARS, id}, v = {size, buf};
        if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) || (rc = mdb_put(txn, dbi, &k, &v, 0)) ||
            (rc = mdb_txn_commit(txn)))
            die_mdb("value commit", rc);
        r->lmdb_write += now_s() - t0;
    }
}

static double read_files(const char *files, uint8_t *buf, size_t size, size_t n, bool cold)
{
    char path[4200], id[HERALD_ID_CHARS + 1];
    if (cold)
        for (size_t i = 0; i < n; i++) {
            file_id(i, id);
            snprintf(path, sizeof path, "%s/%s", files, id);
            drop_cache(path);
        }
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        file_id(i, id);
        snprintf(path, sizeof path, "%s/%s", files, id);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) die_errno("open", path);
        size_t got = 0;
        for (ssize_t k; (k = read(fd, buf + got, size - got < CHUNK ? size - got : CHUNK)) > 0;)
            got += (size_t)k;
        close(fd);
        if (got != size) die_errno("short read of", path);
    }
    return now_s() - t0;
}

static double read_values(MDB_env *env, uint8_t *buf, size_t size, size_t n)
{
    MDB_dbi dbi;
    MDB_txn *txn;
    int rc;
    if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) ||
        (rc = mdb_dbi_open(txn, NULL, 0, &dbi)))
        die_mdb("values", rc);
    mdb_txn_abort(txn);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        char id[HERALD_ID_CHARS + 1];
        file_id(i, id);
        MDB_val k = {HERALD_ID_CHARS, id}, v;
        if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) || (rc = mdb_get(txn, dbi, &k, &v)))
            die_mdb("value read", rc);
        if (v.mv_size != size) die_mdb("value size", MDB_CORRUPTED);
        memcpy(buf, v.mv_data, size);
        mdb_txn_abort(txn);
    }
    return now_s() - t0;
}

static double map_used(MDB_env *env)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    return (double)(info.me_last_pgno + 1) * st.ms_psize;
}

static double file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size : 0;
}

static void remove_folder_files(const char *dir)
{
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "%s: could not remove %s\n", BENCH_NAME, dir);
}

static void run_round(const config *c, size_t size, int k, uint8_t *buf, uint8_t *rbuf, round *r)
{
    char base[4200], files[4300], rows[4300], values[4300], path[4400];
    snprintf(base, sizeof base, "%s/round-%zu-%d", c->dir, size, k);
    remove_folder_files(base);
    if (mkdir(base, 0700) != 0) die_errno("mkdir", base);
    snprintf(files, sizeof files, "%s/files", base);
    snprintf(rows, sizeof rows, "%s/rows", base);
    snprintf(values, sizeof values, "%s/values", base);
    if (mkdir(files, 0700) || mkdir(rows, 0700) || mkdir(values, 0700)) die_errno("mkdir", base);
    size_t map = ((size_t)c->files * (size + 8192) * 3 + ((size_t)64 << 20));
    MDB_env *row_env = env_open(rows, (size_t)64 << 20), *val_env = env_open(values, map);
    memset(r, 0, sizeof *r);
    /* Alternate which side goes first, so neither always meets a busier disk. */
    for (int side = 0; side < 2; side++) {
        if ((side ^ k) & 1)
            write_values(val_env, buf, size, c->files, r);
        else
            write_files(files, row_env, buf, size, c->files, r);
    }
    r->file_and_row = r->file_write + r->row_commit;
    r->map_used = map_used(val_env);
    snprintf(path, sizeof path, "%s/data.mdb", values);
    r->map_file = file_size(path);
    for (size_t i = 0; i < c->files; i++) {
        struct stat st;
        char id[HERALD_ID_CHARS + 1], p[4400];
        file_id(i, id);
        snprintf(p, sizeof p, "%s/%s", files, id);
        if (stat(p, &st) == 0) r->file_blocks += (double)st.st_blocks * 512;
    }
    r->file_warm = read_files(files, rbuf, size, c->files, false);
    r->lmdb_warm = read_values(val_env, rbuf, size, c->files);
    /* Cold: LMDB's map closed, its pages and the files' dropped from the page cache. */
    mdb_env_close(val_env);
    drop_cache(path);
    val_env = env_open(values, map);
    r->lmdb_cold = read_values(val_env, rbuf, size, c->files);
    r->file_cold = read_files(files, rbuf, size, c->files, true);
    /* Deleting every value: LMDB keeps the pages for itself, the file does not shrink. */
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc;
    if ((rc = mdb_txn_begin(val_env, NULL, 0, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) ||
        (rc = mdb_drop(txn, dbi, 0)) || (rc = mdb_txn_commit(txn)))
        die_mdb("delete", rc);
    r->map_after_delete = file_size(path);
    mdb_env_close(val_env);
    mdb_env_close(row_env);
    remove_folder_files(base);
}

static double med(const round *rs, int n, size_t off)
{
    double v[MAX_ROUND];
    for (int i = 0; i < n; i++)
        v[i] = *(const double *)((const char *)&rs[i] + off);
    return median(v, n);
}

#define MED(field) med(rs, c.repeat, offsetof(round, field))

static const char *size_name(size_t size, char *out, size_t n)
{
    if (size % (1 << 20) == 0)
        snprintf(out, n, "%zu MiB", size >> 20);
    else if (size % 1024 == 0)
        snprintf(out, n, "%zu KiB", size >> 10);
    else
        snprintf(out, n, "%zu B", size);
    return out;
}

static bool parse_sizes(const char *arg, config *c)
{
    size_t kib[MAX_SIZES], n;
    if (!parse_groups(arg, kib, MAX_SIZES, &n)) return false;
    for (size_t i = 0; i < n; i++)
        c->sizes[i] = kib[i] * 1024;
    c->nsizes = n;
    return true;
}

int main(int argc, char **argv)
{
    config c = {.dir = NULL,
                .files = 200,
                .sizes = {1024, 64 * 1024, 1024 * 1024},
                .nsizes = 3,
                .repeat = 3};
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},   {"files", required_argument, NULL, 'n'},
        {"sizes", required_argument, NULL, 's'}, {"repeat", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'd':
            c.dir = optarg;
            break;
        case 'n':
            c.files = strtoull(optarg, NULL, 10);
            break;
        case 's':
            if (!parse_sizes(optarg, &c)) goto usage;
            break;
        case 'r':
            c.repeat = atoi(optarg);
            break;
        default:
            goto usage;
        }
    }
    if (!c.dir || c.files < 1 || c.repeat < 1 || c.repeat > MAX_ROUND) goto usage;
    if (mkdir(c.dir, 0700) != 0 && errno != EEXIST) die_errno("mkdir", c.dir);

    size_t biggest = 0;
    for (size_t i = 0; i < c.nsizes; i++)
        if (c.sizes[i] > biggest) biggest = c.sizes[i];
    uint8_t *buf = xmalloc(biggest), *rbuf = xmalloc(biggest);
    for (size_t i = 0; i < biggest; i += 8) {
        uint64_t x = rnd();
        memcpy(buf + i, &x, biggest - i < 8 ? biggest - i : 8);
    }
    printf(
        "bench_blobs: %zu files of each size, %d round%s (medians); fdatasync ceiling %.0f/s\n\n",
        c.files, c.repeat, c.repeat == 1 ? "" : "s", fsync_rate(c.dir, 1.0));
    round all[MAX_SIZES][MAX_ROUND];
    for (size_t s = 0; s < c.nsizes; s++)
        for (int k = 0; k < c.repeat; k++)
            run_round(&c, c.sizes[s], k, buf, rbuf, &all[s][k]);

    printf("Durable writes (files/s and MiB/s of file bytes)\n\n");
    printf("| size | (a) file: write, fsync, rename | (a) + its row's LMDB commit | (b) LMDB "
           "value, synced commit | (a)+row / (b) | writer's ms per file, (a) / (b) "
           "|\n|---|---|---|---|---|---|\n");
    for (size_t s = 0; s < c.nsizes; s++) {
        const round *rs = all[s];
        double mib = (double)c.files * (double)c.sizes[s] / (1 << 20);
        double fw = MED(file_write), fr = MED(file_and_row), lw = MED(lmdb_write);
        char name[32];
        printf(
            "| %s | %.0f/s, %.1f MiB/s | %.0f/s, %.1f MiB/s | %.0f/s, %.1f MiB/s | %.2f | %.2f / "
            "%.2f |\n",
            size_name(c.sizes[s], name, sizeof name), (double)c.files / fw, mib / fw,
            (double)c.files / fr, mib / fr, (double)c.files / lw, mib / lw, lw / fr,
            1e3 * MED(writer_share) / (double)c.files, 1e3 * lw / (double)c.files);
    }
    printf("\nReads of every file (files/s and MiB/s)\n\n");
    printf("| size | (a) file, warm | (b) LMDB, warm | (a) file, cold | (b) LMDB, cold |\n"
           "|---|---|---|---|---|\n");
    for (size_t s = 0; s < c.nsizes; s++) {
        const round *rs = all[s];
        double mib = (double)c.files * (double)c.sizes[s] / (1 << 20);
        double t[4] = {MED(file_warm), MED(lmdb_warm), MED(file_cold), MED(lmdb_cold)};
        char name[32];
        printf("| %s |", size_name(c.sizes[s], name, sizeof name));
        for (int i = 0; i < 4; i++)
            printf(" %.0f/s, %.0f MiB/s |", (double)c.files / t[i], mib / t[i]);
        printf("\n");
    }
    printf("\nSpace for %zu files (MiB)\n\n", c.files);
    printf("| size | file bytes | (a) files' blocks | (b) LMDB pages in use | (b) data.mdb | (b) "
           "data.mdb after deleting every value |\n|---|---|---|---|---|---|\n");
    for (size_t s = 0; s < c.nsizes; s++) {
        const round *rs = all[s];
        double payload = (double)c.files * (double)c.sizes[s], M = 1 << 20;
        char name[32];
        printf("| %s | %.1f | %.1f (%.2fx) | %.1f (%.2fx) | %.1f | %.1f |\n",
               size_name(c.sizes[s], name, sizeof name), payload / M, MED(file_blocks) / M,
               MED(file_blocks) / payload, MED(map_used) / M, MED(map_used) / payload,
               MED(map_file) / M, MED(map_after_delete) / M);
    }
    free(buf);
    free(rbuf);
    rmdir(c.dir);
    return 0;
usage:
    fprintf(stderr, "usage: bench_blobs --dir DIR [--files N] [--sizes KIB,KIB,...] [--repeat R]\n"
                    "  stores N files of each size (default 200 of 1, 64 and 1024 KiB, 3 rounds)\n"
                    "  as files in DIR and as LMDB values, durably, and reads them back\n");
    return 2;
}
