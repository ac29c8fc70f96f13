/* engine.c — the scheduler thread (see engine.h). */
#include "engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

struct engine {
    const kinfer_model *model;
    kinfer_context *ctx;
    metrics *metrics;
    int32_t n_vocab, n_ctx_total;
    pthread_t thread;
    pthread_mutex_t mu;        /* guards sched (queue and slots), stopping */
    pthread_cond_t wake;       /* a submit, a cancel, or stop */
    bool stopping;
    bool joined;               /* the thread has ended */
    sched sched;
    sched_batch batch;
    gen_seq *gens;             /* (n_slots) the generation state of busy slots */
    float *biased;             /* (n_vocab) logits copy for logit_bias */
    /* an embeddings server (cparams.embeddings): requests taken from the
     * queue until all their inputs are embedded, and one step's batch */
    bool embeddings;
    int32_t n_embd;
    request **embd_run;        /* (n_slots) in arrival order, the engine's references */
    int32_t n_embd_run;
    kinfer_token *embd_tok;    /* (n_ctx_total) */
    kinfer_pos *embd_pos;
    kinfer_seq_id *embd_seq;
    request **embd_seq_req;    /* (n_slots) the request and input of each sequence */
    int32_t *embd_seq_input;
};

/* Hand text and/or the end to the request's reader. */
static void deliver(request *r, const textbuf *text, finish_reason finish)
{
    pthread_mutex_lock(&r->mu);
    if (text->n) {
        textbuf_append(&r->text, text->p, text->n);
        textbuf_append(&r->all_text, text->p, text->n);
    }
    if (finish != FINISH_NONE) {
        r->done = true;
        r->finish = finish;
        r->t_end_ns = gen_now_ns();
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void finish_unadmitted(request *r, finish_reason why)
{
    textbuf none = {0};
    deliver(r, &none, why);
    request_release(r);
}

/* A slot's request ends: flush its text, count it, free or keep its cells. */
static void finish_slot(engine *e, int32_t slot, finish_reason why)
{
    sched_slot *sl = &e->sched.slots[slot];
    request *r = sl->request;
    gen_seq *g = &e->gens[slot];
    textbuf tail = {0};
    if (why != FINISH_CANCELLED) gen_seq_finish(g, &tail);
    pthread_mutex_lock(&r->mu);
    r->n_generated = g->n_generated;
    pthread_mutex_unlock(&r->mu);
    deliver(r, &tail, why);
    textbuf_free(&tail);
    uint64_t now = gen_now_ns();
    uint64_t first = r->t_first_ns ? r->t_first_ns : now;
    metrics_add_tokens(e->metrics, (uint64_t)(r->n_prompt - r->n_cached), (uint64_t)g->n_generated,
                       (uint64_t)r->n_cached, (double)(first - r->t_admit_ns) / 1e9,
                       (double)(now - first) / 1e9);
    gen_seq_free(g);
    bool keep = why != FINISH_CANCELLED;
    if (!keep) kinfer_kv_seq_rm(e->ctx, slot, 0, -1);
    sched_release(&e->sched, slot, keep);
    request_release(r);
}

/* Queue -> idle slots, applying each admission's KV plan. */
static void admit_waiting(engine *e)
{
    while (sched_n_idle(&e->sched) > 0) {
        request *r = sched_queue_pop(&e->sched.queue);
        if (!r) break;
        if (atomic_load(&r->cancelled)) {
            finish_unadmitted(r, FINISH_CANCELLED);
            continue;
        }
        sched_admission a;
        if (!sched_admit(&e->sched, r->prompt, r->n_prompt, r->cache_prompt, r, &a)) break;
        kinfer_status st;
        if (a.donor >= 0) {
            st = kinfer_kv_seq_rm(e->ctx, a.slot, 0, -1);
            if (st == KINFER_OK) st = kinfer_kv_seq_cp(e->ctx, a.donor, a.slot, 0, a.n_reuse);
        } else {
            st = kinfer_kv_seq_rm(e->ctx, a.slot, a.n_reuse, -1);
        }
        if (st == KINFER_OK) st = gen_seq_init(&e->gens[a.slot], e->model, a.slot, &r->gen);
        if (st != KINFER_OK) {
            /* the cells are in an unknown state: forget them */
            kinfer_kv_seq_rm(e->ctx, a.slot, 0, -1);
            snprintf(r->error, sizeof r->error, "admission: %s%s%s", kinfer_status_str(st),
                     e->gens[a.slot].error[0] ? ": " : "", e->gens[a.slot].error);
            gen_seq_free(&e->gens[a.slot]);
            sched_release(&e->sched, a.slot, false);
            finish_unadmitted(r, FINISH_ERROR);
            continue;
        }
        gen_seq_accept_prompt(&e->gens[a.slot], r->prompt, r->n_prompt);
        pthread_mutex_lock(&r->mu);
        r->slot = a.slot;
        r->n_cached = a.n_reuse;
        r->t_admit_ns = gen_now_ns();
        pthread_mutex_unlock(&r->mu);
    }
}

static void cancel_gone(engine *e)
{
    for (int32_t i = 0; i < e->sched.n_slots; i++) {
        sched_slot *sl = &e->sched.slots[i];
        if (sl->state != SLOT_IDLE && atomic_load(&((request *)sl->request)->cancelled))
            finish_slot(e, i, FINISH_CANCELLED);
    }
}

/* Sample for every batch entry that asked for logits. */
static void sample_all(engine *e)
{
    const sched_batch *b = &e->batch;
    textbuf piece = {0};
    for (int32_t k = 0; k < b->n; k++) {
        if (!b->logits[k]) continue;
        int32_t slot = b->slot[k];
        request *r = e->sched.slots[slot].request;
        const float *logits = kinfer_get_logits(e->ctx, k);
        if (!logits) {
            finish_slot(e, slot, FINISH_ERROR);
            continue;
        }
        if (r->n_bias) {
            memcpy(e->biased, logits, (size_t)e->n_vocab * sizeof *logits);
            for (int32_t j = 0; j < r->n_bias; j++) e->biased[r->bias_token[j]] += r->bias_value[j];
            logits = e->biased;
        }
        if (!r->t_first_ns) r->t_first_ns = gen_now_ns();
        kinfer_token t = 0;
        textbuf_clear(&piece);
        gen_status gs = gen_seq_next(&e->gens[slot], logits, &t, &piece);
        if (gs == GEN_CONTINUE && sched_slot_full(&e->sched, slot)) gs = GEN_LENGTH;
        pthread_mutex_lock(&r->mu);
        r->n_generated = e->gens[slot].n_generated;
        bool sampled = gs != GEN_EOG && gs != GEN_ERROR;
        bool noted = (r->n_top_logprobs < 0 || !sampled || request_add_logprob(r, logits, e->n_vocab, t)) &&
                     (!r->keep_tokens || !sampled || request_add_token(r, t));
        pthread_mutex_unlock(&r->mu);
        if (!noted) {
            snprintf(r->error, sizeof r->error, "out of memory for logprobs");
            gs = GEN_ERROR;
        }
        if (gs == GEN_CONTINUE) {
            deliver(r, &piece, FINISH_NONE);
            sched_set_next(&e->sched, slot, t);
            continue;
        }
        deliver(r, &piece, FINISH_NONE);
        finish_slot(e, slot, gs == GEN_EOG ? FINISH_EOG
                           : gs == GEN_STOP_STRING ? FINISH_STOP_WORD
                           : gs == GEN_LENGTH ? FINISH_LENGTH : FINISH_ERROR);
    }
    textbuf_free(&piece);
}

/* ------------------------------------------------------------ embeddings */

static int32_t input_offset(const request *r, int32_t input)
{
    int32_t off = 0;
    for (int32_t i = 0; i < input; i++) off += r->input_len[i];
    return off;
}

/* Add request r's next inputs as sequences of the step's batch while they
 * fit (n_slots sequences, n_ctx tokens); false when one did not. */
static bool embd_add_inputs(engine *e, request *r, int32_t *n, int32_t *n_seq)
{
    for (int32_t i = r->n_embd_done; i < r->n_inputs; i++) {
        const int32_t len = r->input_len[i];
        if (*n_seq == e->sched.n_slots || *n + len > e->n_ctx_total) return false;
        const kinfer_token *tok = r->prompt + input_offset(r, i);
        for (int32_t t = 0; t < len; t++) {
            e->embd_tok[*n + t] = tok[t];
            e->embd_pos[*n + t] = t;
            e->embd_seq[*n + t] = *n_seq;
        }
        e->embd_seq_req[*n_seq] = r;
        e->embd_seq_input[*n_seq] = i;
        *n += len;
        ++*n_seq;
    }
    return true;
}

/*
 * One step of an embeddings server (mu held; released while decoding): the
 * inputs of the running requests and then of queued ones, in arrival
 * order, as the sequences of one batch, decoded at once into an emptied
 * cache, each pooled on its own, normalised (euclidean, as llama-server)
 * and stored in its request; a request whose inputs are all done is
 * answered.  False when there was nothing to do.
 */
static bool embd_step(engine *e)
{
    /* the running requests whose client went away */
    int32_t kept = 0;
    for (int32_t k = 0; k < e->n_embd_run; k++) {
        request *r = e->embd_run[k];
        if (atomic_load(&r->cancelled)) finish_unadmitted(r, FINISH_CANCELLED);
        else e->embd_run[kept++] = r;
    }
    e->n_embd_run = kept;
    int32_t n = 0, n_seq = 0;
    bool room = true;
    for (int32_t k = 0; room && k < e->n_embd_run; k++)
        room = embd_add_inputs(e, e->embd_run[k], &n, &n_seq);
    while (room && e->n_embd_run < e->sched.n_slots && e->sched.queue.n > 0) {
        request *r = sched_queue_pop(&e->sched.queue);
        if (atomic_load(&r->cancelled)) {
            finish_unadmitted(r, FINISH_CANCELLED);
            continue;
        }
        pthread_mutex_lock(&r->mu);
        r->t_admit_ns = gen_now_ns();
        pthread_mutex_unlock(&r->mu);
        e->embd_run[e->n_embd_run++] = r;
        room = embd_add_inputs(e, r, &n, &n_seq);
    }
    if (n_seq == 0 && e->n_embd_run > 0) {
        /* (the HTTP side keeps every input within the context) */
        for (int32_t k = 0; k < e->n_embd_run; k++) {
            snprintf(e->embd_run[k]->error, sizeof e->embd_run[k]->error,
                     "an input is longer than the context of %d tokens", e->n_ctx_total);
            finish_unadmitted(e->embd_run[k], FINISH_ERROR);
        }
        e->n_embd_run = 0;
        return true;
    }
    if (n_seq == 0) return false;

    const kinfer_batch kb = {.n_tokens = n, .token = e->embd_tok, .pos = e->embd_pos, .seq_id = e->embd_seq};
    pthread_mutex_unlock(&e->mu);
    kinfer_kv_clear(e->ctx);
    const uint64_t t0 = gen_now_ns();
    kinfer_status st = kinfer_decode(e->ctx, &kb);
    const uint64_t t1 = gen_now_ns();
    pthread_mutex_lock(&e->mu);
    for (int32_t s = 0; s < n_seq; s++) {
        request *r = e->embd_seq_req[s];
        const float *v = st == KINFER_OK ? kinfer_get_embeddings_seq(e->ctx, s) : NULL;
        if (!v) {
            if (!r->error[0])
                snprintf(r->error, sizeof r->error, "decode: %s: %s", kinfer_status_str(st),
                         st ? kinfer_context_errmsg(e->ctx) : "no pooled embedding");
            r->n_embd_done = r->n_inputs; /* ends it, as an error */
            continue;
        }
        kinfer_embd_normalize(v, r->embd + (size_t)e->embd_seq_input[s] * (size_t)e->n_embd,
                              e->n_embd, 2);
        r->n_embd_done = e->embd_seq_input[s] + 1;
    }
    metrics_add_tokens(e->metrics, (uint64_t)n, 0, 0, (double)(t1 - t0) / 1e9, 0.0);
    kept = 0;
    for (int32_t k = 0; k < e->n_embd_run; k++) {
        request *r = e->embd_run[k];
        if (r->n_embd_done < r->n_inputs) {
            e->embd_run[kept++] = r;
            continue;
        }
        finish_unadmitted(r, r->error[0] ? FINISH_ERROR : FINISH_EOG);
    }
    e->n_embd_run = kept;
    return true;
}

static void update_gauges(engine *e)
{
    int64_t busy = 0;
    for (int32_t i = 0; i < e->sched.n_slots; i++) busy += e->sched.slots[i].state != SLOT_IDLE;
    metrics_set_gauges(e->metrics, busy, e->sched.queue.n, kinfer_kv_n_used(e->ctx), e->n_ctx_total);
}

static void *engine_main(void *arg)
{
    engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        if (e->embeddings) {
            if (e->stopping) break;
            if (!embd_step(e)) pthread_cond_wait(&e->wake, &e->mu);
            continue;
        }
        cancel_gone(e);
        if (e->stopping) break;
        admit_waiting(e);
        update_gauges(e);
        if (sched_build_batch(&e->sched, &e->batch) == 0) {
            pthread_cond_wait(&e->wake, &e->mu);
            continue;
        }
        /* the decode runs without the lock: submits and /slots go on */
        kinfer_batch kb = {.n_tokens = e->batch.n, .token = e->batch.token, .pos = e->batch.pos,
                           .seq_id = e->batch.seq, .logits = e->batch.logits};
        pthread_mutex_unlock(&e->mu);
        kinfer_status st = kinfer_decode(e->ctx, &kb);
        pthread_mutex_lock(&e->mu);
        if (st != KINFER_OK) {
            /* nothing was written: fail the requests of this batch */
            for (int32_t k = 0; k < e->batch.n; k++) {
                int32_t slot = e->batch.slot[k];
                if (e->sched.slots[slot].state == SLOT_IDLE) continue;
                snprintf(((request *)e->sched.slots[slot].request)->error, 160, "decode: %s: %s",
                         kinfer_status_str(st), kinfer_context_errmsg(e->ctx));
                finish_slot(e, slot, FINISH_ERROR);
            }
            continue;
        }
        sched_commit_batch(&e->sched, &e->batch);
        sample_all(e);
    }
    /* stopping: cancel what runs and what waits */
    for (int32_t i = 0; i < e->sched.n_slots; i++)
        if (e->sched.slots[i].state != SLOT_IDLE) finish_slot(e, i, FINISH_CANCELLED);
    for (int32_t k = 0; k < e->n_embd_run; k++) finish_unadmitted(e->embd_run[k], FINISH_CANCELLED);
    e->n_embd_run = 0;
    request *r;
    while ((r = sched_queue_pop(&e->sched.queue))) finish_unadmitted(r, FINISH_CANCELLED);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

engine *engine_start(const kinfer_model *model, const engine_params *p, metrics *m, char *err,
                     size_t err_size)
{
    engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    e->model = model;
    e->metrics = m;
    e->joined = true;   /* no thread yet: engine_free has nothing to stop */
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    e->n_vocab = kinfer_model_n_vocab(model);
    kinfer_context_params cp = p->cparams;
    cp.n_seq_max = (uint32_t)p->n_slots;
    /* Each slot's cells in a region of its own: a request's greedy text is
     * then the same whatever else is being served (batch-invariant
     * attention sums, kinfer.h), which is worth what it costs (the slots'
     * regions are fixed: n_ctx / n_slots rounded down to 64 positions each;
     * slower prompts on K-quant models).  Always on: no flag. */
    cp.kv_seq_regions = true;
    /* An embeddings server's batches start from an empty cache, every
     * sequence at position 0: its sequences share all n_ctx cells. */
    e->embeddings = cp.embeddings;
    if (e->embeddings) cp.kv_seq_regions = false;
    kinfer_status st = kinfer_context_new(model, &cp, &e->ctx);
    if (st != KINFER_OK) {
        snprintf(err, err_size, "context: %s: %s", kinfer_status_str(st), kinfer_context_errmsg(e->ctx));
        engine_free(e);
        return NULL;
    }
    e->n_ctx_total = (int32_t)kinfer_context_n_ctx(e->ctx);
    e->n_embd = kinfer_model_n_embd(model);
    if (e->embeddings) {
        const size_t n = (size_t)e->n_ctx_total, ns = (size_t)p->n_slots;
        e->embd_run = calloc(ns, sizeof *e->embd_run);
        e->embd_tok = malloc(n * sizeof *e->embd_tok);
        e->embd_pos = malloc(n * sizeof *e->embd_pos);
        e->embd_seq = malloc(n * sizeof *e->embd_seq);
        e->embd_seq_req = calloc(ns, sizeof *e->embd_seq_req);
        e->embd_seq_input = calloc(ns, sizeof *e->embd_seq_input);
        if (!e->embd_run || !e->embd_tok || !e->embd_pos || !e->embd_seq || !e->embd_seq_req ||
            !e->embd_seq_input) {
            snprintf(err, err_size, "out of memory for embedding batches of %d tokens", e->n_ctx_total);
            goto fail;
        }
    }
    int32_t n_ctx_slot = e->n_ctx_total / p->n_slots / 64 * 64; /* its region (kv_seq_regions) */
    e->gens = calloc((size_t)p->n_slots, sizeof *e->gens);
    e->biased = malloc((size_t)e->n_vocab * sizeof *e->biased);
    if (!e->gens || !e->biased || !sched_init(&e->sched, p->n_slots, n_ctx_slot, p->n_batch, p->queue_cap) ||
        !sched_batch_init(&e->batch, p->n_batch + p->n_slots)) {
        snprintf(err, err_size, "out of memory (or -c %d too small for -np %d)", e->n_ctx_total, p->n_slots);
        goto fail;
    }
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        snprintf(err, err_size, "cannot start the scheduler thread");
        goto fail;
    }
    e->joined = false;
    return e;
fail:
    engine_free(e);
    return NULL;
}

void engine_stop(engine *e)
{
    if (!e || e->joined) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    e->joined = true;
}

void engine_free(engine *e)
{
    if (!e) return;
    engine_stop(e);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    sched_batch_free(&e->batch);
    sched_free(&e->sched);
    free(e->gens);
    free(e->biased);
    free(e->embd_run);
    free(e->embd_tok);
    free(e->embd_pos);
    free(e->embd_seq);
    free(e->embd_seq_req);
    free(e->embd_seq_input);
    kinfer_context_free(e->ctx);
    free(e);
}

submit_result engine_submit(engine *e, request *r)
{
    pthread_mutex_lock(&e->mu);
    submit_result res = SUBMIT_OK;
    if (e->stopping) {
        res = SUBMIT_STOPPING;
    } else {
        pthread_mutex_lock(&r->mu);
        r->refs++;
        r->t_submit_ns = gen_now_ns();
        pthread_mutex_unlock(&r->mu);
        if (!sched_queue_push(&e->sched.queue, r)) {
            pthread_mutex_lock(&r->mu);
            r->refs--;
            pthread_mutex_unlock(&r->mu);
            res = SUBMIT_QUEUE_FULL;
        }
    }
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    return res;
}

void engine_cancel(engine *e, request *r)
{
    atomic_store(&r->cancelled, true);
    pthread_mutex_lock(&e->mu);
    /* still waiting: leave the queue now (a running one ends next step) */
    if (sched_queue_remove(&e->sched.queue, r)) finish_unadmitted(r, FINISH_CANCELLED);
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
}

int32_t engine_n_ctx_slot(const engine *e) { return e->embeddings ? e->n_ctx_total : e->sched.n_ctx_slot; }
bool engine_embeddings(const engine *e) { return e->embeddings; }
kinfer_pooling engine_pooling(const engine *e) { return kinfer_context_pooling(e->ctx); }
int32_t engine_n_slots(const engine *e) { return e->sched.n_slots; }

void engine_slots(engine *e, slot_info *out)
{
    static const char *const names[] = {"idle", "prompt", "generating"};
    pthread_mutex_lock(&e->mu);
    for (int32_t i = 0; i < e->sched.n_slots; i++) {
        const sched_slot *sl = &e->sched.slots[i];
        out[i].id = i;
        out[i].state = names[sl->state];
        out[i].n_cache = sl->n_cache;
        out[i].n_prompt = sl->n_prompt;
        out[i].n_prompt_done = sl->n_prompt_done;
        out[i].n_generated = sl->state == SLOT_IDLE ? 0 : e->gens[i].n_generated;
    }
    pthread_mutex_unlock(&e->mu);
}
