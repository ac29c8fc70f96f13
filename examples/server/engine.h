/*
 * engine.h — the scheduler thread: owns the one kinfer_context (a sequence
 * per slot), admits queued requests into slots (prompt cache: own prefix
 * kept, another slot's prefix copied with kinfer_kv_seq_cp), and each step
 * decodes ONE batch mixing prompt chunks and one token per generating slot,
 * then samples per slot and hands text to the requests.  HTTP threads only
 * submit, cancel and read snapshots.
 */
#ifndef KINFER_SERVER_ENGINE_H
#define KINFER_SERVER_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "kinfer.h"
#include "metrics.h"
#include "request.h"

typedef struct engine engine;

typedef struct engine_params {
    kinfer_context_params cparams; /* n_ctx = the total; n_seq_max is set to n_slots */
    int32_t n_slots;               /* -np */
    int32_t n_batch;               /* -b: prompt tokens per step */
    int32_t queue_cap;             /* requests waiting for a slot */
} engine_params;

/* Create the context and start the thread.  On failure NULL, with the
 * reason in err. */
engine *engine_start(const kinfer_model *model, const engine_params *p, metrics *m, char *err,
                     size_t err_size);
/* Cancel everything in flight and stop the thread; later submits get
 * SUBMIT_STOPPING (the engine stays valid until engine_free). */
void engine_stop(engine *e);
/* Stop if needed, then free the context and everything else. */
void engine_free(engine *e);

typedef enum submit_result { SUBMIT_OK = 0, SUBMIT_QUEUE_FULL, SUBMIT_STOPPING } submit_result;
/* Queue a request (the engine takes its own reference on success). */
submit_result engine_submit(engine *e, request *r);
/* The client is gone: the request is cancelled within one step. */
void engine_cancel(engine *e, request *r);

/* Cells one request may use: its slot's; an embeddings server's inputs may
 * each use the whole context. */
int32_t engine_n_ctx_slot(const engine *e);
/* Started with cparams.embeddings: requests with n_inputs, answered with
 * their embeddings, batched across requests (no generation). */
bool engine_embeddings(const engine *e);
kinfer_pooling engine_pooling(const engine *e);
int32_t engine_n_slots(const engine *e);

typedef struct slot_info {
    int32_t id;
    const char *state;     /* "idle", "prompt", "generating" */
    int32_t n_cache;       /* tokens its cells hold */
    int32_t n_prompt, n_prompt_done, n_generated;
} slot_info;
/* Snapshot of the slots into out (n_slots entries). */
void engine_slots(engine *e, slot_info *out);

#endif
