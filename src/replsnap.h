/*
 * Snapshots of a data folder through JetStream (docs/replication.md): the
 * primary publishes one now and then, and a new replica, or one that fell
 * behind the replication stream's retention, starts from the latest. They
 * travel through JetStream itself, so they outlive the primary that made
 * them.
 *
 * For cluster C: stream `HERALD_<C>_SNAP` (file storage) on subjects
 * `herald.<C>.snap.>`. A snapshot is a backup folder (backup.h) written as
 * one archive (snaparc.h), cut into chunks of at most HD_REPLSNAP_CHUNK
 * bytes published on `herald.<C>.snap.data.<id>` (each with its index in
 * header `Herald-Snap-Chunk`, from 0), then its manifest on
 * `herald.<C>.snap.manifest`, a JSON object:
 *   {"id": "<16 hex>", "seq": u64, "version": u64, "chunks": n, "bytes": n,
 *    "sha256": "<hex of the archive>", "created": <Unix ms>}
 * `seq` is the snapshot's `repl_seq` (the last replication record it holds,
 * 0 when it has none) and `version` its commit version. A manifest is
 * published only after all its chunks were acknowledged, so a manifest
 * names a whole snapshot; once it is stored, older manifests and every
 * older chunk are purged.
 *
 * Caveats:
 * - `cluster` is checked by the caller ([A-Za-z0-9_-]{1,32}); these
 *   functions refuse anything else with HERALD_EINVAL.
 * - One publisher at a time per cluster (the primary). A second one's
 *   purge can take the chunks of a snapshot the first is still writing;
 *   that snapshot's manifest then names missing chunks, which a fetch
 *   refuses (and retries with a newer manifest, when there is one).
 * - A fetch that overlaps a publish may see its snapshot's chunks purged
 *   under it: it starts again from the new manifest (a few times).
 * - `seq` and `version` travel as JSON numbers: values above 2^53 are
 *   refused on both sides (HERALD_ELIMIT when publishing, HERALD_ECORRUPT
 *   when reading).
 * - Every call blocks its thread on the network for up to
 *   HD_REPLSNAP_WAIT_MS per request; never call them from the event loop.
 *   `js` may be shared with other threads (the NATS client's contexts are
 *   thread-safe).
 * - Errors: a NATS failure is HERALD_EIO with the client's status text (and
 *   JetStream's error code and description when the server refused a
 *   request); a snapshot that is not what was published (missing, extra or
 *   reordered chunks, wrong length or digest, a bad archive, a database
 *   whose version or seq is not the manifest's) is HERALD_ECORRUPT.
 */
#ifndef HD_REPLSNAP_H
#define HD_REPLSNAP_H

#include <stdint.h>

#include <nats/nats.h>

#include "herald/store.h"

/* The largest chunk: below NATS' default maximum payload of 1 MiB, with room for headers. */
#define HD_REPLSNAP_CHUNK ((size_t)512 * 1024)
/* How long one JetStream request (a publish's ack, a stream request, a chunk) may take. */
#define HD_REPLSNAP_WAIT_MS 10000

typedef struct hd_replsnap_info {
    char id[33]; /* the snapshot's id (lowercase hex) */
    uint64_t seq, version, chunks, bytes;
    double created_ms; /* when the publisher began it, Unix milliseconds */
} hd_replsnap_info;

/*
 * Creates the snapshot stream if missing, with `replicas` (1 to 3) copies.
 * An existing stream is left as it is. HERALD_EINVAL for a bad cluster name
 * or replica count; HERALD_EIO.
 */
int hd__replsnap_ensure(jsCtx *js, const char *cluster, int replicas, herald_error *err);

/*
 * Backs store `s` (open on data folder `data_dir`, as the writer or
 * read-only) up into a new temporary folder under `tmp_parent`, publishes
 * it, purges older snapshots and removes the temporary folder (also on
 * failure). *info gets the manifest published. The stream must exist
 * (hd__replsnap_ensure). Errors: those of hd__backup(), HERALD_ELIMIT,
 * HERALD_EIO, HERALD_ENOMEM. A failure before the manifest leaves chunks
 * that no manifest names; the next publish purges them. When only the purge
 * after the manifest fails, the snapshot is published all the same: *info
 * is its manifest and the purge's HERALD_EIO is returned (the next publish
 * purges again).
 */
int hd__replsnap_publish(jsCtx *js, const char *cluster, herald_store *s, const char *data_dir,
                         const char *tmp_parent, hd_replsnap_info *info, herald_error *err);

/*
 * The latest complete snapshot's manifest into *info. HERALD_ENOTFOUND when
 * there is none (or no snapshot stream); HERALD_ECORRUPT for a manifest
 * that is not one; HERALD_EIO.
 */
int hd__replsnap_latest(jsCtx *js, const char *cluster, hd_replsnap_info *info, herald_error *err);

/*
 * Fetches the latest snapshot into new folder `dest`, which must not exist
 * (HERALD_EINVAL): written under `<dest>.tmp-XXXXXX`, checked against its
 * manifest (chunk order and count, length, SHA-256; the database's version
 * and `repl_seq`), fsynced and renamed to `dest` at the end, as hd__backup
 * does; *info gets its manifest. The result is a backup folder that
 * `herald restore` or hd__backup() copies into a data folder (or that
 * serves as one). On failure nothing is left at `dest` and the temporary
 * folder is removed. HERALD_ENOTFOUND when there is no snapshot;
 * HERALD_ECORRUPT, HERALD_EIO, HERALD_ENOMEM.
 */
int hd__replsnap_fetch(jsCtx *js, const char *cluster, const char *dest, hd_replsnap_info *info,
                       herald_error *err);

#endif
