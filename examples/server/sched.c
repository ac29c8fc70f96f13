/* sched.c — the scheduler's pure logic (see sched.h). */
#include "sched.h"

#include <stdlib.h>
#include <string.h>

bool sched_init(sched *s, int32_t n_slots, int32_t n_ctx_slot, int32_t n_batch, int32_t queue_cap)
{
    memset(s, 0, sizeof *s);
    if (n_slots <= 0 || n_ctx_slot <= 1 || n_batch <= 0 || queue_cap <= 0) return false;
    s->slots = calloc((size_t)n_slots, sizeof *s->slots);
    s->queue.items = calloc((size_t)queue_cap, sizeof *s->queue.items);
    if (!s->slots || !s->queue.items) {
        sched_free(s);
        return false;
    }
    s->n_slots = n_slots;
    s->n_ctx_slot = n_ctx_slot;
    s->n_batch = n_batch;
    s->queue.cap = queue_cap;
    for (int32_t i = 0; i < n_slots; i++) {
        s->slots[i].id = i;
        s->slots[i].cache = malloc((size_t)n_ctx_slot * sizeof(kinfer_token));
        s->slots[i].cap = n_ctx_slot;
        if (!s->slots[i].cache) {
            sched_free(s);
            return false;
        }
    }
    return true;
}

void sched_free(sched *s)
{
    for (int32_t i = 0; s->slots && i < s->n_slots; i++) free(s->slots[i].cache);
    free(s->slots);
    free(s->queue.items);
    memset(s, 0, sizeof *s);
}

int32_t sched_common_prefix(const kinfer_token *a, int32_t n_a, const kinfer_token *b, int32_t n_b)
{
    int32_t n = n_a < n_b ? n_a : n_b, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

bool sched_queue_push(sched_queue *q, void *item)
{
    if (q->n == q->cap) return false;
    q->items[(q->head + q->n) % q->cap] = item;
    q->n++;
    return true;
}

void *sched_queue_pop(sched_queue *q)
{
    if (q->n == 0) return NULL;
    void *item = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    return item;
}

bool sched_queue_remove(sched_queue *q, void *item)
{
    for (int32_t i = 0; i < q->n; i++) {
        if (q->items[(q->head + i) % q->cap] != item) continue;
        for (int32_t j = i; j + 1 < q->n; j++)
            q->items[(q->head + j) % q->cap] = q->items[(q->head + j + 1) % q->cap];
        q->n--;
        return true;
    }
    return false;
}

int32_t sched_n_idle(const sched *s)
{
    int32_t n = 0;
    for (int32_t i = 0; i < s->n_slots; i++) n += s->slots[i].state == SLOT_IDLE;
    return n;
}

bool sched_admit(sched *s, const kinfer_token *prompt, int32_t n_prompt, bool use_cache,
                 void *request, sched_admission *out)
{
    int32_t best = -1, best_lcp = -1;
    for (int32_t i = 0; i < s->n_slots; i++) {
        const sched_slot *sl = &s->slots[i];
        if (sl->state != SLOT_IDLE) continue;
        int32_t lcp = use_cache ? sched_common_prefix(sl->cache, sl->n_cache, prompt, n_prompt) : 0;
        /* longest prefix first; among equals (no prefix at all, say) the
         * one used least recently, so hot caches survive */
        if (lcp > best_lcp || (lcp == best_lcp && sl->last_used < s->slots[best].last_used)) {
            best = i;
            best_lcp = lcp;
        }
    }
    if (best < 0) return false;
    int32_t max_reuse = n_prompt - 1;   /* the last prompt token is decoded for its logits */
    if (max_reuse < 0) max_reuse = 0;
    int32_t n_reuse = best_lcp < max_reuse ? best_lcp : max_reuse, donor = -1;
    if (use_cache) {
        for (int32_t i = 0; i < s->n_slots; i++) {
            if (i == best) continue;
            const sched_slot *sl = &s->slots[i];
            int32_t lcp = sched_common_prefix(sl->cache, sl->n_cache, prompt, n_prompt);
            if (lcp > max_reuse) lcp = max_reuse;
            if (lcp > n_reuse) {
                n_reuse = lcp;
                donor = i;
            }
        }
    }
    sched_slot *sl = &s->slots[best];
    if (donor >= 0) memcpy(sl->cache, s->slots[donor].cache, (size_t)n_reuse * sizeof *sl->cache);
    sl->n_cache = n_reuse;
    sl->state = SLOT_PROMPT;
    sl->prompt = prompt;
    sl->n_prompt = n_prompt;
    sl->n_prompt_done = n_reuse;
    sl->n_cached_at_admit = n_reuse;
    sl->request = request;
    sl->last_used = ++s->step;
    out->slot = best;
    out->n_reuse = n_reuse;
    out->donor = donor;
    return true;
}

bool sched_batch_init(sched_batch *b, int32_t cap)
{
    memset(b, 0, sizeof *b);
    b->cap = cap;
    b->token = malloc((size_t)cap * sizeof *b->token);
    b->pos = malloc((size_t)cap * sizeof *b->pos);
    b->seq = malloc((size_t)cap * sizeof *b->seq);
    b->logits = malloc((size_t)cap * sizeof *b->logits);
    b->slot = malloc((size_t)cap * sizeof *b->slot);
    if (!b->token || !b->pos || !b->seq || !b->logits || !b->slot) {
        sched_batch_free(b);
        return false;
    }
    return true;
}

void sched_batch_free(sched_batch *b)
{
    free(b->token);
    free(b->pos);
    free(b->seq);
    free(b->logits);
    free(b->slot);
    memset(b, 0, sizeof *b);
}

static void batch_add(sched_batch *b, int32_t slot, kinfer_token token, kinfer_pos pos, bool logits)
{
    b->token[b->n] = token;
    b->pos[b->n] = pos;
    b->seq[b->n] = slot;
    b->logits[b->n] = logits;
    b->slot[b->n] = slot;
    b->n++;
}

int32_t sched_build_batch(sched *s, sched_batch *b)
{
    b->n = 0;
    for (int32_t i = 0; i < s->n_slots; i++) {
        sched_slot *sl = &s->slots[i];
        if (sl->state == SLOT_GENERATE && b->n < b->cap)
            batch_add(b, i, sl->next_token, sl->n_cache, true);
    }
    int32_t budget = s->n_batch, start = s->next_prompt_slot;
    for (int32_t k = 0; k < s->n_slots && budget > 0; k++) {
        int32_t i = (start + k) % s->n_slots;
        sched_slot *sl = &s->slots[i];
        if (sl->state != SLOT_PROMPT) continue;
        int32_t left = sl->n_prompt - sl->n_prompt_done;
        int32_t m = left < budget ? left : budget;
        if (m > b->cap - b->n) m = b->cap - b->n;
        for (int32_t j = 0; j < m; j++) {
            int32_t p = sl->n_prompt_done + j;
            batch_add(b, i, sl->prompt[p], p, p == sl->n_prompt - 1);
        }
        budget -= m;
        /* a prompt that did not finish goes first next step; otherwise the
         * next one does, so two long prompts take turns fairly */
        s->next_prompt_slot = m < left ? i : (i + 1) % s->n_slots;
    }
    return b->n;
}

void sched_commit_batch(sched *s, const sched_batch *b)
{
    for (int32_t k = 0; k < b->n; k++) {
        sched_slot *sl = &s->slots[b->slot[k]];
        if (sl->n_cache < sl->cap) sl->cache[sl->n_cache++] = b->token[k];
        if (sl->state == SLOT_PROMPT) sl->n_prompt_done++;
    }
}

void sched_set_next(sched *s, int32_t slot, kinfer_token token)
{
    s->slots[slot].state = SLOT_GENERATE;
    s->slots[slot].next_token = token;
}

bool sched_slot_full(const sched *s, int32_t slot)
{
    return s->slots[slot].n_cache >= s->n_ctx_slot;
}

void sched_release(sched *s, int32_t slot, bool keep_cache)
{
    sched_slot *sl = &s->slots[slot];
    sl->state = SLOT_IDLE;
    sl->prompt = NULL;
    sl->n_prompt = sl->n_prompt_done = 0;
    sl->request = NULL;
    if (!keep_cache) sl->n_cache = 0;
}
