/*
 * kvcache.c — KV cells (position, sequence set) and per-layer K/V storage;
 * sequence remove / copy / keep / shift.
 */
#include "kvcache/kvcache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu/kernels.h"
#include "model/weights.h"
#include "quant.h"

uint32_t kv_region_size(uint32_t n_ctx, uint32_t n_seq_max)
{
    return n_seq_max ? n_ctx / n_seq_max / 64u * 64u : 0;
}

uint32_t kv_swa_slots(const model_weights *w, uint32_t n_ctx, uint32_t n_seq_max, uint32_t n_batch,
                      uint32_t region)
{
    const int64_t n_swa = w->hp.n_swa;
    if (n_swa <= 0 || region) return n_ctx;
    const uint64_t want = (uint64_t)n_seq_max * 2u * (uint64_t)n_swa + n_batch;
    return want < n_ctx ? (uint32_t)want : n_ctx;
}

uint64_t kv_layer_bytes(const model_weights *w, int il, uint32_t n_ctx, uint32_t n_seq_max,
                        uint32_t n_batch, uint32_t region, int type_k, int type_v)
{
    const model_hparams *hp = &w->hp;
    const int64_t kd = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t vd = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const uint64_t row = kinfer_row_size(type_k, kd) + kinfer_row_size(type_v, vd);
    const int swa = w->layers[il].is_swa && hp->n_swa > 0;
    return row * (swa ? kv_swa_slots(w, n_ctx, n_seq_max, n_batch, region) : n_ctx);
}

uint64_t kv_cache_bytes(const model_weights *w, uint32_t n_ctx, uint32_t n_seq_max,
                        uint32_t n_batch, uint32_t region, int type_k, int type_v)
{
    uint64_t bytes = 0;
    for (int il = 0; il < w->hp.n_layer; il++)
        bytes += kv_layer_bytes(w, il, n_ctx, n_seq_max, n_batch, region, type_k, type_v);
    return bytes;
}

static size_t line_align(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

kinfer_status kv_init(kv_cache *kv, const model_weights *w, uint32_t n_ctx, uint32_t n_seq_max,
                      uint32_t n_batch, uint32_t region, int type_k, int type_v)
{
    const model_hparams *hp = &w->hp;
    memset(kv, 0, sizeof *kv);
    kv->n_ctx = n_ctx;
    kv->n_seq_max = n_seq_max;
    kv->region = region;
    if (region && (uint64_t)region * n_seq_max > n_ctx) return KINFER_E_INVALID_ARG;
    kv->n_layer = hp->n_layer;
    kv->type_k = type_k;
    kv->type_v = type_v;
    kv->n_head_kv = hp->n_head_kv;
    kv->head_dim_k = hp->head_dim_k;
    kv->head_dim_v = hp->head_dim_v;
    kv->head_k = kinfer_row_size(type_k, hp->head_dim_k);
    kv->head_v = kinfer_row_size(type_v, hp->head_dim_v);
    if (!kv->head_k || !kv->head_v) return KINFER_E_UNSUPPORTED;
    kv->cells = malloc((size_t)n_ctx * sizeof *kv->cells);
    kv->slot = malloc((size_t)n_ctx * sizeof *kv->slot);
    kv->k = calloc((size_t)hp->n_layer, sizeof *kv->k);
    kv->v = calloc((size_t)hp->n_layer, sizeof *kv->v);
    kv->cell_mine = calloc(n_ctx, 1);
    kv->horizon = malloc(2 * (size_t)n_seq_max * sizeof *kv->horizon);
    kv->view_cell = malloc((size_t)n_ctx * sizeof *kv->view_cell);
    kv->view_pos = malloc((size_t)n_ctx * sizeof *kv->view_pos);
    if (!kv->cells || !kv->slot || !kv->k || !kv->v || !kv->cell_mine || !kv->horizon ||
        !kv->view_cell || !kv->view_pos)
        return KINFER_E_NOMEM;
    kv->n_swa = hp->n_swa;
    kv->n_swa_slots = kv_swa_slots(w, n_ctx, n_seq_max, n_batch, region);
    /* with regions a sliding-window layer's rows are by cell (no slots):
     * layer_swa stays NULL, and only the window (n_swa) limits what a token
     * sees */
    if (kv->n_swa > 0 && !region) {
        uint8_t *ls = calloc((size_t)hp->n_layer, 1);
        kv->free_slots = malloc((size_t)kv->n_swa_slots * sizeof *kv->free_slots);
        kv->dead = malloc((size_t)kv->n_swa_slots * sizeof *kv->dead);
        if (!ls || !kv->free_slots || !kv->dead) {
            free(ls);
            return KINFER_E_NOMEM;
        }
        for (int il = 0; il < hp->n_layer; il++) ls[il] = (uint8_t)w->layers[il].is_swa;
        kv->layer_swa = ls;
    }
    /* One anonymous mapping for every layer's rows, each layer's K and V
     * on a cache line (calloc's would start 16 bytes past one, and rows
     * straddling lines cost the attention loads ~20% at depth); its pages
     * are zero until written: zero rows are valid in every cache type, so
     * reading a never-written row (masked anyway) never sees garbage. */
    size_t total = 0;
    for (int il = 0; il < hp->n_layer; il++) {
        const size_t rows = kv_layer_rows(kv, il) * (size_t)kv->n_head_kv;
        total += line_align(rows * kv->head_k) + line_align(rows * kv->head_v);
    }
    void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return KINFER_E_NOMEM;
    kv->mem = mem;
    kv->mem_size = total;
    uint8_t *p = mem;
    for (int il = 0; il < hp->n_layer; il++) {
        const size_t rows = kv_layer_rows(kv, il) * (size_t)kv->n_head_kv;
        kv->k[il] = p;
        p += line_align(rows * kv->head_k);
        kv->v[il] = p;
        p += line_align(rows * kv->head_v);
    }
    kv_clear(kv);
    return KINFER_OK;
}

void kv_free(kv_cache *kv)
{
    if (kv->mem) munmap(kv->mem, kv->mem_size);
    free(kv->k);
    free(kv->v);
    free(kv->cells);
    free(kv->slot);
    free(kv->free_slots);
    free(kv->dead);
    free((void *)kv->layer_swa);
    free(kv->cell_mine);
    free(kv->horizon);
    free(kv->view_cell);
    free(kv->view_pos);
    memset(kv, 0, sizeof *kv);
}

void kv_clear(kv_cache *kv)
{
    for (uint32_t i = 0; i < kv->n_ctx; i++) {
        kv->cells[i].pos = -1;
        memset(kv->cells[i].seq, 0, sizeof kv->cells[i].seq);
    }
    kv->n_used = 0;
    kv->hi = 0;
    for (uint32_t i = 0; i < kv->n_ctx; i++) kv->slot[i] = -1;
    kv->n_free_slots = 0;
    if (kv->free_slots)
        for (uint32_t s = kv->n_swa_slots; s-- > 0;) kv->free_slots[kv->n_free_slots++] = s;
}

static void slot_release(kv_cache *kv, uint32_t i)
{
    if (kv->slot[i] < 0) return;
    kv->free_slots[kv->n_free_slots++] = (uint32_t)kv->slot[i];
    kv->slot[i] = -1;
}

/* qsort_r order of cell indices: by position */
static int by_pos(const void *a, const void *b, void *kv_)
{
    const kv_cache *kv = kv_;
    const int32_t pa = kv->cells[*(const uint32_t *)a].pos, pb = kv->cells[*(const uint32_t *)b].pos;
    return (pa > pb) - (pa < pb);
}

/* Dead for every sequence of the cell: no token can see it on a local layer. */
static int cell_dead(const kv_cache *kv, const kv_cell *c, const int32_t *horizon)
{
    for (int w = 0; w < KV_SEQ_WORDS; w++) {
        for (uint64_t bits = c->seq[w]; bits; bits &= bits - 1) {
            const int s = w * 64 + __builtin_ctzll(bits);
            if (c->pos > horizon[s] - kv->n_swa) return 0;
        }
    }
    return 1;
}

int kv_swa_assign(kv_cache *kv, const uint32_t *cells, int32_t n, const uint8_t *mine,
                  const int32_t *horizon_before, const int32_t *horizon_now)
{
    if (kv->n_swa <= 0 || kv->region) return 1;
    if (kv->n_free_slots < (uint32_t)n) {
        /* reclaim dead cells' slots, the oldest first and only as many as
         * needed: the rest keep their rows for a kv_seq_rm that goes back */
        uint32_t n_dead = 0;
        for (uint32_t i = 0; i < kv->hi; i++) {
            const kv_cell *c = &kv->cells[i];
            if (c->pos < 0 || kv->slot[i] < 0) continue;
            if (cell_dead(kv, c, mine[i] ? horizon_now : horizon_before)) kv->dead[n_dead++] = i;
        }
        qsort_r(kv->dead, n_dead, sizeof *kv->dead, by_pos, kv);
        for (uint32_t d = 0; d < n_dead && kv->n_free_slots < (uint32_t)n; d++) slot_release(kv, kv->dead[d]);
    }
    if (kv->n_free_slots < (uint32_t)n) return 0;
    for (int32_t t = 0; t < n; t++)
        kv->slot[cells[t]] = (int32_t)kv->free_slots[--kv->n_free_slots];
    return 1;
}

int kv_swa_lost(const kv_cache *kv, int32_t s, int32_t p)
{
    if (kv->n_swa <= 0 || kv->region) return 0;
    for (uint32_t i = 0; i < kv->hi; i++) {
        const kv_cell *c = &kv->cells[i];
        if (c->pos >= 0 && kv->slot[i] < 0 && c->pos < p && p - c->pos < kv->n_swa &&
            kv_cell_has_seq(c, s))
            return 1;
    }
    return 0;
}

int kv_find_free(const kv_cache *kv, uint32_t n, uint32_t *idx)
{
    if (kv->n_ctx - kv->n_used < n) return 0;
    uint32_t found = 0;
    for (uint32_t i = 0; i < kv->n_ctx && found < n; i++)
        if (kv->cells[i].pos < 0) idx[found++] = i;
    return found == n;
}

void kv_cell_take(kv_cache *kv, uint32_t i, int32_t pos, int32_t seq)
{
    kv_cell *c = &kv->cells[i];
    if (c->pos < 0) kv->n_used++;
    c->pos = pos;
    memset(c->seq, 0, sizeof c->seq);
    c->seq[seq >> 6] |= 1ull << (seq & 63);
    if (i + 1 > kv->hi) kv->hi = i + 1;
}

void kv_cell_release(kv_cache *kv, uint32_t i)
{
    kv_cell *c = &kv->cells[i];
    if (c->pos >= 0) kv->n_used--;
    if (kv->free_slots) slot_release(kv, i);
    c->pos = -1;
    memset(c->seq, 0, sizeof c->seq);
    while (kv->hi > 0 && kv->cells[kv->hi - 1].pos < 0) kv->hi--;
}

static int cell_empty_seq(const kv_cell *c)
{
    for (int w = 0; w < KV_SEQ_WORDS; w++)
        if (c->seq[w]) return 0;
    return 1;
}

static int in_range(int32_t pos, int32_t p0, int32_t p1)
{
    if (p0 < 0) p0 = 0;
    return pos >= p0 && (p1 < 0 || pos < p1);
}

int32_t kv_seq_pos_max(const kv_cache *kv, int32_t seq)
{
    int32_t m = -1;
    for (uint32_t i = 0; i < kv->hi; i++) {
        const kv_cell *c = &kv->cells[i];
        if (c->pos > m && kv_cell_has_seq(c, seq)) m = c->pos;
    }
    return m;
}

void kv_seq_rm(kv_cache *kv, int32_t seq, int32_t p0, int32_t p1)
{
    for (uint32_t i = 0; i < kv->hi; i++) {
        kv_cell *c = &kv->cells[i];
        if (c->pos < 0 || !in_range(c->pos, p0, p1)) continue;
        if (seq < 0) {
            memset(c->seq, 0, sizeof c->seq);
        } else {
            c->seq[seq >> 6] &= ~(1ull << (seq & 63));
        }
        if (cell_empty_seq(c)) kv_cell_release(kv, i);
    }
}

/* Cell `to` gets cell `from`'s key and value rows in every layer (regions:
 * rows by cell in every layer). */
static void copy_cell_rows(kv_cache *kv, uint32_t from, uint32_t to)
{
    for (int il = 0; il < kv->n_layer; il++)
        for (int h = 0; h < kv->n_head_kv; h++) {
            uint8_t *k = kv_k_head(kv, il, h), *v = kv_v_head(kv, il, h);
            memcpy(k + (size_t)to * kv->head_k, k + (size_t)from * kv->head_k, kv->head_k);
            memcpy(v + (size_t)to * kv->head_v, v + (size_t)from * kv->head_v, kv->head_v);
        }
}

/* Regions: src's cells in [p0, p1) copied to the same positions in dst's
 * region, whose cells there are replaced. */
static void region_seq_cp(kv_cache *kv, int32_t src, int32_t dst, int32_t p0, int32_t p1)
{
    const uint32_t bs = (uint32_t)src * kv->region, bd = (uint32_t)dst * kv->region;
    for (uint32_t p = 0; p < kv->region; p++) {
        if (!in_range((int32_t)p, p0, p1)) continue;
        const kv_cell *c = &kv->cells[bs + p];
        if (c->pos < 0 || !kv_cell_has_seq(c, src)) continue;
        copy_cell_rows(kv, bs + p, bd + p);
        kv_cell_take(kv, bd + p, c->pos, dst);
    }
}

void kv_seq_cp(kv_cache *kv, int32_t src, int32_t dst, int32_t p0, int32_t p1)
{
    if (src == dst) return;
    if (kv->region) {
        region_seq_cp(kv, src, dst, p0, p1);
        return;
    }
    for (uint32_t i = 0; i < kv->hi; i++) {
        kv_cell *c = &kv->cells[i];
        if (c->pos >= 0 && in_range(c->pos, p0, p1) && kv_cell_has_seq(c, src))
            c->seq[dst >> 6] |= 1ull << (dst & 63);
    }
}

void kv_seq_keep(kv_cache *kv, int32_t seq)
{
    for (uint32_t i = 0; i < kv->hi; i++) {
        kv_cell *c = &kv->cells[i];
        if (c->pos < 0) continue;
        int keep = kv_cell_has_seq(c, seq);
        memset(c->seq, 0, sizeof c->seq);
        if (keep)
            c->seq[seq >> 6] |= 1ull << (seq & 63);
        else
            kv_cell_release(kv, i);
    }
}

/* Re-rotate cell i's keys in every layer by delta positions: RoPE angles are
 * linear in the position, so rotating a rotated key by delta gives the key
 * at pos + delta. */
static void rerotate_cell(kv_cache *kv, const model_weights *w, uint32_t i, int32_t delta,
                          float *tmp)
{
    const model_hparams *hp = &w->hp;
    for (int il = 0; il < kv->n_layer; il++) {
        if (kv->layer_swa && kv->layer_swa[il] && kv->slot[i] < 0) continue; /* rows gone */
        const size_t r = kv_row_index(kv, il, i);
        for (int h = 0; h < kv->n_head_kv; h++)
            kinfer_dequantize_row(kv->type_k, kv_k_head(kv, il, h) + r * kv->head_k,
                                  tmp + h * kv->head_dim_k, kv->head_dim_k);
        const kinfer_rope_params rp = model_layer_rope(w, il, kv_ctx_seq(kv));
        kinfer_rope(tmp, 1, hp->n_head_kv, hp->head_dim_k, &delta, &rp);
        for (int h = 0; h < kv->n_head_kv; h++)
            kinfer_quantize_act_row(kv->type_k, tmp + h * kv->head_dim_k,
                                    kv_k_head(kv, il, h) + r * kv->head_k, kv->head_dim_k);
    }
}

/* Regions: seq's cells in [p0, p1) move to cell base + pos + delta (their
 * rows copied, then re-rotated); those below position 0 are removed.  The
 * moves go in the direction that never lands on a cell still to move. */
static kinfer_status region_seq_add(kv_cache *kv, const model_weights *w, int32_t seq, int32_t p0,
                                    int32_t p1, int32_t delta)
{
    const uint32_t base = (uint32_t)seq * kv->region;
    const int32_t n = (int32_t)kv->region;
    for (int32_t p = 0; p < n; p++) {
        const kv_cell *c = &kv->cells[base + (uint32_t)p];
        if (c->pos < 0 || !in_range(p, p0, p1)) continue;
        const int32_t np = p + delta;
        if (np < 0) continue;
        if (np >= n) return KINFER_E_CONTEXT_FULL;
        if (kv->cells[base + (uint32_t)np].pos >= 0 && !in_range(np, p0, p1))
            return KINFER_E_UNSUPPORTED; /* a cell that stays holds that position */
    }
    float *tmp = malloc((size_t)kv->n_head_kv * (size_t)kv->head_dim_k * sizeof *tmp);
    if (!tmp) return KINFER_E_NOMEM;
    for (int32_t k = 0; k < n; k++) {
        const int32_t p = delta < 0 ? k : n - 1 - k;
        const uint32_t from = base + (uint32_t)p;
        if (kv->cells[from].pos < 0 || !in_range(p, p0, p1)) continue;
        const int32_t np = p + delta;
        if (np >= 0) {
            const uint32_t to = base + (uint32_t)np;
            copy_cell_rows(kv, from, to);
            kv_cell_take(kv, to, np, seq);
            rerotate_cell(kv, w, to, delta, tmp);
        }
        kv_cell_release(kv, from);
    }
    free(tmp);
    return KINFER_OK;
}

kinfer_status kv_seq_add(kv_cache *kv, const model_weights *w, int32_t seq, int32_t p0,
                         int32_t p1, int32_t delta)
{
    if (delta == 0) return KINFER_OK;
    if (kv->region) return region_seq_add(kv, w, seq, p0, p1, delta);
    float *tmp = malloc((size_t)kv->n_head_kv * (size_t)kv->head_dim_k * sizeof *tmp);
    if (!tmp) return KINFER_E_NOMEM;
    for (uint32_t i = 0; i < kv->hi; i++) {
        kv_cell *c = &kv->cells[i];
        if (c->pos < 0 || !in_range(c->pos, p0, p1) || !kv_cell_has_seq(c, seq)) continue;
        /* The cell's position is shared by every sequence that sees it (a
         * copied prefix): they all move, as in llama.cpp. */
        int32_t np = c->pos + delta;
        if (np < 0) {
            kv_cell_release(kv, i);
            continue;
        }
        c->pos = np;
        rerotate_cell(kv, w, i, delta, tmp);
    }
    free(tmp);
    return KINFER_OK;
}

void kv_write(kv_cache *kv, int il, uint32_t i, const float *k, const float *v)
{
    const size_t r = kv_row_index(kv, il, i);
    for (int h = 0; h < kv->n_head_kv; h++) {
        kinfer_quantize_act_row(kv->type_k, k + h * kv->head_dim_k, kv_k_head(kv, il, h) + r * kv->head_k,
                                kv->head_dim_k);
        kinfer_quantize_act_row(kv->type_v, v + h * kv->head_dim_v, kv_v_head(kv, il, h) + r * kv->head_v,
                                kv->head_dim_v);
    }
}

/* ------------------------------------------------------ a decode's cells */

kinfer_status kv_batch_begin(kv_cache *kv, int32_t n, const int32_t *pos, const int32_t *seq,
                             uint32_t *cells)
{
    if (kv->region) {
        /* every cell first: the batch's (seq, pos) are distinct (the
         * positions of a sequence increase), so its cells are too */
        for (int32_t i = 0; i < n; i++) {
            if (pos[i] < 0 || (uint32_t)pos[i] >= kv->region || (uint32_t)seq[i] >= kv->n_seq_max)
                return KINFER_E_CONTEXT_FULL;
            cells[i] = (uint32_t)seq[i] * kv->region + (uint32_t)pos[i];
            if (kv->cells[cells[i]].pos >= 0) return KINFER_E_CONTEXT_FULL;
        }
    } else if (!kv_find_free(kv, (uint32_t)n, cells)) {
        return KINFER_E_CONTEXT_FULL;
    }
    for (int32_t i = 0; i < n; i++) kv_cell_take(kv, cells[i], pos[i], seq[i]);
    for (int32_t i = 0; i < n; i++) kv->cell_mine[cells[i]] = 1;
    kv->hi_ubatch = kv->hi;
    while (kv->hi_ubatch > 0 && (kv->cells[kv->hi_ubatch - 1].pos < 0 || kv->cell_mine[kv->hi_ubatch - 1]))
        kv->hi_ubatch--;
    if (kv->n_swa <= 0 || kv->region) return KINFER_OK;
    /* sliding-window horizons per sequence (see kv_swa_assign), from the
     * cells that were there before this decode */
    int32_t *h_before = kv->horizon, *h_now = kv->horizon + kv->n_seq_max;
    for (uint32_t q = 0; q < kv->n_seq_max; q++) h_before[q] = 0;
    for (uint32_t c = 0; c < kv->hi; c++) {
        const kv_cell *cell = &kv->cells[c];
        if (cell->pos < 0 || kv->cell_mine[c]) continue;
        for (int w = 0; w < KV_SEQ_WORDS; w++)
            for (uint64_t bits = cell->seq[w]; bits; bits &= bits - 1) {
                const int q = w * 64 + __builtin_ctzll(bits);
                if (cell->pos + 1 > h_before[q]) h_before[q] = cell->pos + 1;
            }
    }
    memcpy(h_now, h_before, kv->n_seq_max * sizeof *h_now);
    return KINFER_OK;
}

int kv_batch_ubatch(kv_cache *kv, const uint32_t *cells, int32_t m, const int32_t *pos,
                    const int32_t *seq)
{
    for (int32_t i = 0; i < m; i++)
        if (cells[i] + 1 > kv->hi_ubatch) kv->hi_ubatch = cells[i] + 1;
    if (kv->n_swa <= 0 || kv->region) return 1;
    int32_t *h_before = kv->horizon, *h_now = kv->horizon + kv->n_seq_max;
    for (int32_t i = m; i-- > 0;) h_now[seq[i]] = pos[i]; /* first */
    if (!kv_swa_assign(kv, cells, m, kv->cell_mine, h_before, h_now)) return 0;
    for (int32_t i = 0; i < m; i++) h_now[seq[i]] = pos[i] + 1;
    return 1;
}

void kv_batch_end(kv_cache *kv, const uint32_t *cells, int32_t n, int failed)
{
    for (int32_t i = 0; i < n; i++) kv->cell_mine[cells[i]] = 0;
    if (failed)
        for (int32_t i = 0; i < n; i++) kv_cell_release(kv, cells[i]);
    kv->hi_ubatch = kv->hi;
}

/* ------------------------------------------------------------- views */

kv_view kv_view_of(kv_cache *kv, const int32_t *seq, int32_t n)
{
    uint64_t want[KV_SEQ_WORDS] = {0};
    for (int32_t t = 0; t < n; t++) want[seq[t] >> 6] |= 1ull << (seq[t] & 63);
    int one_seq = 1;
    for (int32_t t = 1; t < n; t++) one_seq &= seq[t] == seq[0];
    int32_t *cell = kv->view_cell, *pos = kv->view_pos, nv = 0;
    for (uint32_t c = 0; c < kv->hi; c++) {
        const kv_cell *kc = &kv->cells[c];
        if (kc->pos < 0) continue;
        uint64_t any = 0;
        for (int w = 0; w < KV_SEQ_WORDS; w++) any |= kc->seq[w] & want[w];
        if (!any) continue;
        cell[nv] = (int32_t)c;
        pos[nv] = kc->pos;
        nv++;
    }
    return (kv_view){.cell = cell, .pos = pos, .n = nv, .one_seq = one_seq, .id = ++kv->n_views};
}

int32_t kv_visible_rows(const kv_cache *kv, const kv_view *view, int il, int32_t p, int32_t s,
                        int swa, int32_t *rows)
{
    const int by_slot = kv->layer_swa && kv->layer_swa[il];
    int32_t nv = 0;
    for (int32_t r = 0; r < view->n; r++) {
        const int32_t cp = view->pos[r], c = view->cell[r];
        if (cp > p || (swa && p - cp >= kv->n_swa)) continue;
        if (!view->one_seq && !kv_cell_has_seq(&kv->cells[c], s)) continue;
        rows[nv++] = by_slot ? kv->slot[c] : c;
    }
    return nv;
}
