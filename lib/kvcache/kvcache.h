/*
 * kvcache.h — the KV cache of a context (internal).
 *
 * n_ctx cells.  A cell holds, for every layer, one key row and one value row
 * (all kv heads, in type_k / type_v), plus a position and the set of
 * sequences that see it.  A cell with pos < 0 is free.  Cells are not kept
 * in order: attention visits the used ones and masks by sequence and
 * position, so any free cell can take any token.
 *
 * Sliding-window layers (Gemma 3) keep their rows in a smaller store of
 * n_swa_slots rows: a cell gets a slot when it is written, and gives it back
 * when a slot is needed and no later token of its sequences can see it (its
 * position is n_swa or more behind the sequence's last).  A used cell without a slot has lost its
 * local-layer rows: a batch that would need them (after kv_seq_rm went back
 * more than a window) is refused.
 */
#ifndef KINFER_KVCACHE_H
#define KINFER_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer.h"
#include "model/weights.h"

#define KV_SEQ_WORDS ((KINFER_MAX_SEQ + 63) / 64)

typedef struct kv_cell {
    int32_t pos;                   /* -1: free */
    uint64_t seq[KV_SEQ_WORDS];    /* bit s set: sequence s sees this cell */
} kv_cell;

typedef struct kv_cache {
    uint32_t n_ctx;                /* cells */
    uint32_t n_seq_max;
    /* kv_seq_regions: cells per sequence (a multiple of 64), position p of
     * sequence s in cell s * region + p; 0: any free cell takes any token */
    uint32_t region;
    int32_t n_layer;
    int type_k, type_v;            /* KINFER_TYPE_F16 / Q8_0 / F32 */
    int n_head_kv;
    int64_t head_dim_k, head_dim_v;
    size_t head_k, head_v;         /* bytes of one kv head's key / value row */
    /* per layer: (n_head_kv, rows, head_k) and (n_head_kv, rows, head_v)
     * bytes, a kv head's rows together: attention streams one head's keys
     * and values without striding over the others' (kv_k_head) */
    uint8_t **k, **v;
    void *mem;                     /* the mapping k and v point into */
    size_t mem_size;
    kv_cell *cells;                /* n_ctx */
    uint32_t n_used;               /* cells with pos >= 0 */
    uint32_t hi;                   /* every cell at index >= hi is free */
    /* every cell at index >= hi_ubatch is free or waits for a later
     * micro-batch of the decode in progress: llama.cpp's used_max_p1 as
     * the current micro-batch runs (its flash attention's view size) */
    uint32_t hi_ubatch;

    /* sliding-window layers: rows by slot instead of by cell */
    int32_t n_swa;                 /* window in positions; 0: no such layers */
    const uint8_t *layer_swa;      /* (n_layer) 1 for a sliding-window layer */
    uint32_t n_swa_slots;          /* rows of a sliding-window layer's store */
    int32_t *slot;                 /* (n_ctx) slot of each cell, -1 none */
    uint32_t *free_slots;          /* stack of free slots */
    uint32_t n_free_slots;
    uint32_t *dead;                /* (n_swa_slots) scratch of kv_swa_assign */

    /* a decode in progress (kv_batch_*) and its views (kv_view_of) */
    uint8_t *cell_mine;            /* (n_ctx) 1: cell taken by the current decode */
    int32_t *horizon;              /* (2, n_seq_max) sliding-window horizons */
    int32_t *view_cell, *view_pos; /* (n_ctx) the cells of the current view */
    uint64_t n_views;              /* views made so far: a view's id */
} kv_cache;

/* Positions one sequence can hold: its region, or the whole cache. */
static inline uint32_t kv_ctx_seq(const kv_cache *kv)
{
    return kv->region ? kv->region : kv->n_ctx;
}

/* Cells per sequence under kv_seq_regions: n_ctx / n_seq_max rounded down
 * to a multiple of 64 (0 when that is less than 64). */
uint32_t kv_region_size(uint32_t n_ctx, uint32_t n_seq_max);

/* Slots a sliding-window layer needs: every sequence may hold up to n_swa - 1
 * positions from before a decode plus n_swa - 1 from its earlier
 * micro-batches, plus one micro-batch; never more than n_ctx.  With regions
 * (region > 0) n_ctx: such a layer keeps a row per cell, as a full one. */
uint32_t kv_swa_slots(const model_weights *w, uint32_t n_ctx, uint32_t n_seq_max, uint32_t n_batch,
                      uint32_t region);

/* Bytes the K and V rows of layer il would take. */
uint64_t kv_layer_bytes(const model_weights *w, int il, uint32_t n_ctx, uint32_t n_seq_max,
                        uint32_t n_batch, uint32_t region, int type_k, int type_v);

/* Bytes the cache of a model would take (without the cell table). */
uint64_t kv_cache_bytes(const model_weights *w, uint32_t n_ctx, uint32_t n_seq_max,
                        uint32_t n_batch, uint32_t region, int type_k, int type_v);

/* region: kv_region_size for kv_seq_regions, else 0. */
kinfer_status kv_init(kv_cache *kv, const model_weights *w, uint32_t n_ctx, uint32_t n_seq_max,
                      uint32_t n_batch, uint32_t region, int type_k, int type_v);
void kv_free(kv_cache *kv);

static inline int kv_cell_has_seq(const kv_cell *c, int32_t seq)
{
    return (int)((c->seq[seq >> 6] >> (seq & 63)) & 1u);
}

/* Find n free cells (lowest indices first) into idx; 0 if there are fewer. */
int kv_find_free(const kv_cache *kv, uint32_t n, uint32_t *idx);

/* Occupy cell i with (pos, seq) / free it. */
void kv_cell_take(kv_cache *kv, uint32_t i, int32_t pos, int32_t seq);
void kv_cell_release(kv_cache *kv, uint32_t i);

/* Largest position held for seq, or -1 when none. */
int32_t kv_seq_pos_max(const kv_cache *kv, int32_t seq);

/* Remove / copy / keep / shift, as in kinfer.h (seq < 0 in seq_rm = every
 * sequence).  seq_add needs the model to re-rotate keys.  With regions,
 * seq_cp copies the rows into dst's region (its cells there in [p0, p1)
 * are replaced), and seq_add moves cells within seq's region: it checks
 * first and changes nothing on failure (KINFER_E_CONTEXT_FULL: a position
 * past the region; KINFER_E_UNSUPPORTED: onto a cell that stays). */
void kv_seq_rm(kv_cache *kv, int32_t seq, int32_t p0, int32_t p1);
void kv_seq_cp(kv_cache *kv, int32_t src, int32_t dst, int32_t p0, int32_t p1);
void kv_seq_keep(kv_cache *kv, int32_t seq);
kinfer_status kv_seq_add(kv_cache *kv, const model_weights *w, int32_t seq, int32_t p0,
                         int32_t p1, int32_t delta);
void kv_clear(kv_cache *kv);

/*
 * A decode's claim on cells, in three steps: kv_batch_begin takes a cell for
 * every token of the batch (cells[0..n), lowest free first; with regions,
 * cell seq * region + pos, which must be free and in the region) before any is
 * written; kv_batch_ubatch gives the cells of each micro-batch, in order,
 * their sliding-window slots; kv_batch_end releases them all again when the
 * decode failed, so the cache is as it was before the call.  The cells of
 * later micro-batches are taken but not written yet: no token sees them
 * (later positions of its own sequence; other sequences are masked).
 */
kinfer_status kv_batch_begin(kv_cache *kv, int32_t n, const int32_t *pos, const int32_t *seq,
                             uint32_t *cells);
/* 0 when the sliding-window store is out of slots. */
int kv_batch_ubatch(kv_cache *kv, const uint32_t *cells, int32_t m, const int32_t *pos,
                    const int32_t *seq);
void kv_batch_end(kv_cache *kv, const uint32_t *cells, int32_t n, int failed);

/*
 * The cells a micro-batch may attend to, found once per micro-batch (the
 * cell table does not change while its layers run): used cells, in cell
 * order, seen by at least one sequence of the batch.  Each token then
 * filters this short list per layer (kv_visible_rows).  Valid until the
 * next kv_view_of or change of the cache.
 */
typedef struct kv_view {
    const int32_t *cell;   /* (n) cell indices, ascending */
    const int32_t *pos;    /* (n) their positions */
    int32_t n;
    int one_seq;           /* every token of the batch is of one sequence */
    uint64_t id;           /* distinct for every view made on this cache */
} kv_view;

kv_view kv_view_of(kv_cache *kv, const int32_t *seq, int32_t n);

/* Rows of layer il's store that a token at position p of sequence s sees,
 * in cell order: of its sequence, at positions <= p and, on a
 * sliding-window layer (swa), less than n_swa behind.  Returns how many. */
int32_t kv_visible_rows(const kv_cache *kv, const kv_view *view, int il, int32_t p, int32_t s,
                        int swa, int32_t *rows);

/*
 * Give slots to the cells of one micro-batch (cells[0..n)).  When short,
 * reclaims the slots of cells no token can see any more, oldest first and
 * no more than needed (the others keep their rows should kv_seq_rm take the
 * sequence back).  A cell is dead for
 * sequence s when its position is at least n_swa behind the earliest
 * position a token of s may still have: for cells written before this
 * decode (mine[cell] == 0) that is horizon_before[s] (the sequence's last
 * position before the decode + 1), so an aborted decode loses nothing; for
 * cells of this decode, horizon_now[s] (its first position in this
 * micro-batch, or the one after its last written).  A cell is reclaimed
 * when dead for all its sequences.  0 when out of slots.
 */
int kv_swa_assign(kv_cache *kv, const uint32_t *cells, int32_t n, const uint8_t *mine,
                  const int32_t *horizon_before, const int32_t *horizon_now);

/* Whether sequence s lost local-layer rows a token at position p would see
 * (cells in (p - n_swa, p) without a slot). */
int kv_swa_lost(const kv_cache *kv, int32_t s, int32_t p);

/* Row of cell i in layer il (its slot on a sliding-window layer). */
static inline size_t kv_row_index(const kv_cache *kv, int il, uint32_t i)
{
    return kv->layer_swa && kv->layer_swa[il] ? (size_t)kv->slot[i] : (size_t)i;
}

/* Rows of layer il's store: slots on a sliding-window layer, else cells. */
static inline size_t kv_layer_rows(const kv_cache *kv, int il)
{
    return kv->layer_swa && kv->layer_swa[il] ? (size_t)kv->n_swa_slots : (size_t)kv->n_ctx;
}

/* Row 0 of kv head h's keys (values) in layer il; rows are head_k (head_v)
 * bytes apart. */
static inline uint8_t *kv_k_head(const kv_cache *kv, int il, int h)
{
    return kv->k[il] + (size_t)h * kv_layer_rows(kv, il) * kv->head_k;
}

static inline uint8_t *kv_v_head(const kv_cache *kv, int il, int h)
{
    return kv->v[il] + (size_t)h * kv_layer_rows(kv, il) * kv->head_v;
}

/* Write one token's key and value rows (f32, n_head_kv * head_dim_k / _v) of layer
 * il into cell i, converting to the cache types. */
void kv_write(kv_cache *kv, int il, uint32_t i, const float *k, const float *v);

#endif /* KINFER_KVCACHE_H */
