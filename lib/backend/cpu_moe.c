/*
 * cpu_moe.c — the mixture-of-experts FFN on the CPU (backend.h's moe_ffn).
 *
 * Per slice of tokens: the router's probabilities (kinfer_moe_router, in
 * ggml's order), each token's top n_used experts, then the tokens grouped
 * by expert: the rows routed to one expert are gathered and go through its
 * gated FFN as one matmul over the expert's slice of the 3-D tensors, so
 * every chosen expert's weights are read once per slice and an expert no
 * token chose is not read at all (a decode step reads n_used experts).
 * Each matmul splits the expert's rows over the pool's threads, so the
 * work is balanced whatever the routing.
 *
 * llama.cpp's mul_mat_id sums an expert's tokens in the orders of a plain
 * matmul of that many, except for repacked matrices (each token in the
 * one-token order), so these matmuls are KINFER_MATMUL_QUANT_MMID (Q4_K:
 * still up to 8 tokens per pass over the weights, gemm.h's mmid kernels;
 * gate and up in one gated pass); the outputs are weighted,
 * then added in slot order (highest probability first), as build_moe_ffn's
 * ggml_mul and chain of ggml_add do.
 */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu.h"
#include "core/status.h"
#include "cpu/gemm.h"
#include "cpu/kernels.h"

/* ggml_clamp's floor on the sum of the chosen weights (the smallest normal
 * F16), so a zero sum does not divide by zero */
#define MOE_MIN_WEIGHT_SUM 6.103515625e-5f

size_t cpu_moe_scratch_bytes(const model_hparams *hp, int32_t n_tokens)
{
    if (hp->n_expert == 0) return 0;
    const size_t nk = (size_t)n_tokens * (size_t)hp->n_expert_used;
    const size_t floats = (size_t)n_tokens * (size_t)hp->n_expert + nk +
                          2 * nk * (size_t)hp->n_embd + 2 * nk * (size_t)hp->n_ff_exp;
    const size_t ints = 3 * nk + (size_t)hp->n_expert + 1;
    return floats * sizeof(float) + ints * sizeof(int32_t);
}

kinfer_status cpu_moe_init(cpu_backend *cb, const model_hparams *hp, int32_t n_tokens)
{
    const size_t bytes = cpu_moe_scratch_bytes(hp, n_tokens);
    if (bytes == 0) return KINFER_OK;
    cb->moe_mem = malloc(bytes);
    if (!cb->moe_mem) return KINFER_E_NOMEM;
    cb->moe_tokens = n_tokens;
    return KINFER_OK;
}

/* The scratch of one call, carved from cb->moe_mem (shapes (rows, cols)). */
typedef struct moe_work {
    float *probs;      /* (n, n_expert) router probabilities */
    float *weight;     /* (n, k) weight of each token's slot */
    float *xg;         /* (n * k, E) inputs grouped by expert */
    float *yg;         /* (n * k, E) expert outputs, same rows */
    float *hg;         /* (n * k, F) gated hidden rows */
    float *ug;         /* (n * k, F) up products (gate and up in two passes) */
    int32_t *expert;   /* (n, k) expert of each token's slot */
    int32_t *row;      /* (n, k) the slot's row in the grouped buffers */
    int32_t *slot;     /* (n * k) grouped row -> t * k + s */
    int32_t *first;    /* (n_expert + 1) first grouped row of each expert */
} moe_work;

static moe_work moe_carve(cpu_backend *cb, const model_hparams *hp, int32_t n)
{
    const size_t nk = (size_t)n * (size_t)hp->n_expert_used;
    const size_t E = (size_t)hp->n_embd, F = (size_t)hp->n_ff_exp;
    moe_work w;
    w.probs = cb->moe_mem;
    w.weight = w.probs + (size_t)n * (size_t)hp->n_expert;
    w.xg = w.weight + nk;
    w.yg = w.xg + nk * E;
    w.hg = w.yg + nk * E;
    w.ug = w.hg + nk * F;
    w.expert = (int32_t *)(w.ug + nk * F);
    w.row = w.expert + nk;
    w.slot = w.row + nk;
    w.first = w.slot + nk;
    return w;
}

/* Token t's k experts, most probable first (ties: the lower index, as any
 * order of std::sort could give), and their weights. */
static void route_token(const float *p, int n_expert, int k, int norm, int32_t *expert, float *weight)
{
    for (int s = 0; s < k; s++) {
        int best = -1;
        for (int e = 0; e < n_expert; e++) {
            int taken = 0;
            for (int j = 0; j < s && !taken; j++) taken = expert[j] == e;
            if (!taken && (best < 0 || p[e] > p[best])) best = e;
        }
        expert[s] = best;
        weight[s] = p[best];
    }
    if (!norm) return;
    double sum = 0.0; /* ggml_sum_rows: in double, rounded to float */
    for (int s = 0; s < k; s++) sum += (double)weight[s];
    float total = (float)sum;
    if (!(total >= MOE_MIN_WEIGHT_SUM)) total = MOE_MIN_WEIGHT_SUM;
    for (int s = 0; s < k; s++) weight[s] /= total;
}

static kinfer_status moe_failed(backend *be, kinfer_status st, int e, const char *what)
{
    return status_fail(be->errmsg, sizeof be->errmsg, st, "expert %d's %s matmul failed: %s", e, what,
                       kinfer_status_str(st));
}

/* expert e's matrix of a 3-D tensor */
static const void *expert_matrix(const wtensor *t, int e)
{
    return (const uint8_t *)t->data + (size_t)e * t->row_size * (size_t)t->ne1;
}

/* hg, yg rows [r0, r0 + cnt) = expert e's FFN of xg's */
static kinfer_status run_expert(cpu_backend *cb, const backend_moe *m, const moe_work *w, int e, int32_t r0,
                                int32_t cnt, int64_t E, int64_t F)
{
    backend *be = &cb->base;
    const kinfer_gate_fn gate = m->act == ARCH_ACT_GELU ? kinfer_gelu_gate : kinfer_silu_gate;
    const float *x = w->xg + (size_t)r0 * (size_t)E;
    float *h = w->hg + (size_t)r0 * (size_t)F, *u = w->ug + (size_t)r0 * (size_t)F;
    float *y = w->yg + (size_t)r0 * (size_t)E;
    const int tg = m->gate_exps->type, tu = m->up_exps->type;
    kinfer_status st;
    if (tg == tu) {
        /* one pass over both matrices: the bits of two matmuls and the gate */
        st = kinfer_matmul_gated_ex(cb->pool, cb->mm, cb->mm_size, tg, expert_matrix(m->gate_exps, e),
                                    expert_matrix(m->up_exps, e), F, E, x, cnt, h, gate,
                                    KINFER_MATMUL_QUANT_MMID);
        if (st) return moe_failed(be, st, e, "gated");
    } else {
        st = kinfer_matmul_ex(cb->pool, cb->mm, cb->mm_size, tg, expert_matrix(m->gate_exps, e), F, E, x,
                              cnt, h, KINFER_MATMUL_QUANT_MMID);
        if (st) return moe_failed(be, st, e, "gate");
        st = kinfer_matmul_ex(cb->pool, cb->mm, cb->mm_size, tu, expert_matrix(m->up_exps, e), F, E, x,
                              cnt, u, KINFER_MATMUL_QUANT_MMID);
        if (st) return moe_failed(be, st, e, "up");
        for (int32_t i = 0; i < cnt; i++)
            gate(h + (size_t)i * (size_t)F, h + (size_t)i * (size_t)F, u + (size_t)i * (size_t)F, F);
    }
    st = kinfer_matmul_ex(cb->pool, cb->mm, cb->mm_size, m->down_exps->type, expert_matrix(m->down_exps, e),
                          E, F, h, cnt, y, KINFER_MATMUL_QUANT_MMID);
    return st ? moe_failed(be, st, e, "down") : KINFER_OK;
}

kinfer_status cpu_moe_ffn(backend *be, const backend_moe *m, const float *x, int32_t n, float *y)
{
    cpu_backend *cb = (cpu_backend *)be;
    const int n_expert = (int)m->gate_inp->ne1, k = m->n_used;
    const int64_t E = m->gate_inp->ne0, F = m->gate_exps->ne1;
    if (!cb->moe_mem || n > cb->moe_tokens || k < 1 || k > n_expert || m->gate_exps->ne2 != n_expert)
        return status_fail(be->errmsg, sizeof be->errmsg, KINFER_E_INVALID_ARG,
                           "mixture of experts: %d tokens, %d of %d experts do not fit the scratch", n, k,
                           n_expert);
    const model_hparams shape = {.n_embd = (int32_t)E, .n_expert = n_expert, .n_expert_used = k,
                                 .n_ff_exp = (int32_t)F};
    const moe_work w = moe_carve(cb, &shape, n);

    /* route: probabilities, each token's experts and weights */
    kinfer_moe_router(m->gate_inp->data, n_expert, E, x, n, w.probs);
    for (int32_t t = 0; t < n; t++)
        route_token(w.probs + (size_t)t * (size_t)n_expert, n_expert, k, m->norm_weights,
                    w.expert + (size_t)t * (size_t)k, w.weight + (size_t)t * (size_t)k);

    /* group the (token, slot) rows by expert, tokens in order */
    memset(w.first, 0, sizeof(int32_t) * (size_t)(n_expert + 1));
    const int32_t nk = n * k;
    for (int32_t i = 0; i < nk; i++) w.first[w.expert[i] + 1]++;
    for (int e = 0; e < n_expert; e++) w.first[e + 1] += w.first[e];
    for (int32_t i = 0; i < nk; i++) {
        const int32_t r = w.first[w.expert[i]]++;
        w.row[i] = r;
        w.slot[r] = i;
    }
    for (int e = n_expert; e > 0; e--) w.first[e] = w.first[e - 1];
    w.first[0] = 0;
    for (int32_t r = 0; r < nk; r++)
        memcpy(w.xg + (size_t)r * (size_t)E, x + (size_t)(w.slot[r] / k) * (size_t)E, sizeof(float) * (size_t)E);

    /* every chosen expert once, over all its rows */
    for (int e = 0; e < n_expert; e++) {
        const int32_t cnt = w.first[e + 1] - w.first[e];
        if (cnt == 0) continue;
        kinfer_status st = run_expert(cb, m, &w, e, w.first[e], cnt, E, F);
        if (st) return st;
    }

    /* y = sum over slots of weight * output, slot 0 first (x is no longer read) */
    for (int32_t t = 0; t < n; t++) {
        float *yt = y + (size_t)t * (size_t)E;
        for (int s = 0; s < k; s++) {
            const size_t i = (size_t)t * (size_t)k + (size_t)s;
            const float *o = w.yg + (size_t)w.row[i] * (size_t)E, wt = w.weight[i];
            if (s == 0)
                for (int64_t j = 0; j < E; j++) yt[j] = o[j] * wt;
            else
                for (int64_t j = 0; j < E; j++) yt[j] = yt[j] + o[j] * wt;
        }
    }
    return KINFER_OK;
}
