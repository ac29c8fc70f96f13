/*
 * sched.h — the batch scheduler's pure logic: slots, the request queue,
 * slot choice with prompt-cache reuse, and building one mixed decode batch
 * per step.  No model, no context, no threads: the engine (engine.c) applies
 * what this decides to the KV cache, and tests/test_sched.c drives it with
 * fake requests.
 *
 * Invariant: slot i is sequence i of the context, and slot->cache holds
 * exactly the tokens whose cells sequence i has, at positions 0..n_cache-1.
 */
#ifndef KINFER_SERVER_SCHED_H
#define KINFER_SERVER_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "kinfer.h"

typedef enum slot_state {
    SLOT_IDLE = 0,   /* no request; cache kept for reuse */
    SLOT_PROMPT,     /* evaluating its prompt, chunk by chunk */
    SLOT_GENERATE    /* one token a step */
} slot_state;

typedef struct sched_slot {
    int32_t id;                 /* = its sequence id */
    slot_state state;
    kinfer_token *cache;        /* (cap) tokens held in the KV cache, owned */
    int32_t n_cache, cap;
    const kinfer_token *prompt; /* (n_prompt) the request's, borrowed while busy */
    int32_t n_prompt;
    int32_t n_prompt_done;      /* prompt tokens in the cache */
    int32_t n_cached_at_admit;  /* prompt tokens reused from a cache (own or copied) */
    kinfer_token next_token;    /* GENERATE: the sampled token to decode next */
    uint64_t last_used;         /* step of the last admission, for LRU */
    void *request;              /* the engine's request, NULL when idle */
} sched_slot;

/* A bounded FIFO of pending requests (opaque pointers). */
typedef struct sched_queue {
    void **items;
    int32_t cap, head, n;
} sched_queue;

typedef struct sched {
    sched_slot *slots;          /* (n_slots) */
    int32_t n_slots;
    int32_t n_ctx_slot;         /* cells one slot may hold */
    int32_t n_batch;            /* prompt tokens per step (generating slots come on top) */
    uint64_t step;
    int32_t next_prompt_slot;   /* round-robin start among prompt slots */
    sched_queue queue;
} sched;

/* One decode batch, with for each entry the slot it belongs to.  Capacity
 * n_batch + n_slots entries. */
typedef struct sched_batch {
    int32_t n, cap;
    kinfer_token *token;
    kinfer_pos *pos;
    kinfer_seq_id *seq;
    int8_t *logits;
    int32_t *slot;
} sched_batch;

/* What admitting a request does to the KV cache.  The engine applies it:
 * donor < 0:  kv_seq_rm(slot, n_reuse, -1)        (keep the slot's own prefix)
 * donor >= 0: kv_seq_rm(slot, 0, -1); kv_seq_cp(donor, slot, 0, n_reuse) */
typedef struct sched_admission {
    int32_t slot;
    int32_t n_reuse;            /* prompt tokens not recomputed */
    int32_t donor;              /* slot whose cells are copied, or -1 */
} sched_admission;

bool sched_init(sched *s, int32_t n_slots, int32_t n_ctx_slot, int32_t n_batch, int32_t queue_cap);
void sched_free(sched *s);

/* Length of the common prefix of two token arrays. */
int32_t sched_common_prefix(const kinfer_token *a, int32_t n_a, const kinfer_token *b, int32_t n_b);

/* Queue: push is false when full (the caller answers 503). */
bool sched_queue_push(sched_queue *q, void *item);
void *sched_queue_pop(sched_queue *q);
/* Remove an item wherever it is (a cancelled request); true if found. */
bool sched_queue_remove(sched_queue *q, void *item);

int32_t sched_n_idle(const sched *s);

/*
 * Choose a slot for a prompt and plan its reuse: the idle slot whose cache
 * shares the longest prefix with the prompt, else the idle slot used least
 * recently; then, if any other slot holds a longer prefix, copy that one's
 * cells instead.  Reuse stops one short of the whole prompt (its last token
 * must be decoded for logits).  use_cache false: nothing is reused.  The
 * slot becomes SLOT_PROMPT owning request.  False when no slot is idle.
 */
bool sched_admit(sched *s, const kinfer_token *prompt, int32_t n_prompt, bool use_cache,
                 void *request, sched_admission *out);

/*
 * Fill b with one step: one token for every generating slot, then prompt
 * chunks of the prompt slots (round robin) up to n_batch tokens; logits on
 * generated tokens and on a prompt's last token.  Returns b->n (0 = idle).
 */
int32_t sched_build_batch(sched *s, sched_batch *b);
bool sched_batch_init(sched_batch *b, int32_t cap);
void sched_batch_free(sched_batch *b);

/* After a successful decode of b: the slots' caches and prompt progress
 * advance.  A slot whose prompt is complete is then ready to sample (its
 * entry has logits); the engine calls sched_set_next or sched_release. */
void sched_commit_batch(sched *s, const sched_batch *b);

/* A slot sampled a token to decode next step: it is SLOT_GENERATE. */
void sched_set_next(sched *s, int32_t slot, kinfer_token token);

/* Whether a generating slot has room for one more token. */
bool sched_slot_full(const sched *s, int32_t slot);

/* The request is done: the slot goes idle.  keep_cache false (a cancelled
 * request) forgets its tokens: the engine then removes its cells. */
void sched_release(sched *s, int32_t slot, bool keep_cache);

#endif
