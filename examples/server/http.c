/* http.c — routes and answers on libmicrohttpd (see http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "embed.h"
#include "oai.h"
#include "ollama.h"
#include "router.h"

struct http_server {
    struct MHD_Daemon *daemon;
    server *srv;
    int port;
};

/* One request on a connection: its route and its body. */
typedef struct exchange {
    const struct route *route;
    bool wrong_method;
    textbuf body;
    bool too_large;
} exchange;

typedef enum MHD_Result (*route_fn)(server *srv, struct MHD_Connection *c, exchange *x);

typedef struct route {
    const char *path;
    const char *method;
    const char *name;       /* the endpoint in /metrics */
    route_fn fn;
    api_kind kind;          /* completion routes */
    bool open;              /* answered without the API key and before the model is ready */
    bool ollama;            /* errors in Ollama's shape {"error": "..."} */
} route;

/* ------------------------------------------------------------- answers */

static enum MHD_Result send_body(server *srv, struct MHD_Connection *c, const exchange *x, int status,
                                 const char *content_type, const char *body, size_t n)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) MHD_add_response_header(resp, "Retry-After", "1");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    metrics_count_request(&srv->metrics, x->route ? x->route->name : "unknown", status);
    return ret;
}

/* Send a malloc'd JSON text (NULL: out of memory) and free it. */
static enum MHD_Result send_json(server *srv, struct MHD_Connection *c, const exchange *x, int status, char *json)
{
    if (!json) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"code\":500}}";
        return send_body(srv, c, x, 500, "application/json", oom, sizeof oom - 1);
    }
    enum MHD_Result ret = send_body(srv, c, x, status, "application/json", json, strlen(json));
    free(json);
    return ret;
}

static enum MHD_Result send_cjson(server *srv, struct MHD_Connection *c, const exchange *x, int status, cJSON *obj)
{
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    return send_json(srv, c, x, status, s);
}

static enum MHD_Result send_error(server *srv, struct MHD_Connection *c, const exchange *x, const api_error *err)
{
    bool ollama = x->route && x->route->ollama;
    return send_json(srv, c, x, err->status, ollama ? ollama_error_json(err) : oai_error_json(err));
}

static enum MHD_Result fail(server *srv, struct MHD_Connection *c, const exchange *x, int status,
                            const char *type, const char *message)
{
    api_error err;
    oai_set_error(&err, status, type, "%s", message);
    return send_error(srv, c, x, &err);
}

/* ------------------------------------------------- the client went away */

/* The peer closed its end (a read would see end-of-file or an error). */
static bool client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    char byte;
    ssize_t k = recv(ci->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* With r->mu held: wait until the request has new text or is done, looking
 * for a vanished client every 50 ms.  False (the request cancelled) when
 * the client is gone. */
static bool wait_output(engine *eng, struct MHD_Connection *c, request *r)
{
    while (!r->done && r->text.n == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT && client_gone(c)) {
            pthread_mutex_unlock(&r->mu);
            engine_cancel(eng, r);
            pthread_mutex_lock(&r->mu);
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------ completion routes */

typedef struct stream {
    server *srv;
    served *sv;             /* held until the stream ends */
    int64_t keep_alive_ms;
    struct MHD_Connection *c;
    request *r;
    api_call call;
    textbuf out;            /* events not yet handed to MHD */
    size_t off;
    bool finished;
} stream;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream *st = cls;
    request *r = st->r;
    while (st->off == st->out.n) {
        if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        textbuf_clear(&st->out);
        st->off = 0;
        pthread_mutex_lock(&r->mu);
        if (!wait_output(st->sv->engine, st->c, r)) {
            pthread_mutex_unlock(&r->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        st->finished = r->done;
        if (st->call.kind >= API_OLLAMA_GENERATE)
            ollama_stream_lines(st->sv, &st->call, r, textbuf_str(&r->text), r->text.n, r->done, &st->out);
        else
            oai_stream_events(st->sv, &st->call, r, textbuf_str(&r->text), r->text.n, r->done, &st->out);
        textbuf_clear(&r->text);
        pthread_mutex_unlock(&r->mu);
    }
    size_t n = st->out.n - st->off < max ? st->out.n - st->off : max;
    memcpy(buf, st->out.p + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

/* MHD is done with the stream (finished, or the connection closed). */
static void stream_free(void *cls)
{
    stream *st = cls;
    if (!st->finished) engine_cancel(st->sv->engine, st->r);
    request_release(st->r);
    router_release(st->srv->router, st->sv, st->keep_alive_ms);
    textbuf_free(&st->out);
    free(st);
}

/* Takes over r and the hold on sv. */
static enum MHD_Result start_stream(server *srv, struct MHD_Connection *c, const exchange *x, served *sv,
                                    int64_t keep_alive_ms, request *r, const api_call *call)
{
    stream *st = calloc(1, sizeof *st);
    if (!st) {
        engine_cancel(sv->engine, r);
        request_release(r);
        router_release(srv->router, sv, keep_alive_ms);
        return fail(srv, c, x, 500, "server_error", "out of memory");
    }
    *st = (stream){.srv = srv, .sv = sv, .keep_alive_ms = keep_alive_ms, .c = c, .r = r, .call = *call};
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            call->kind >= API_OLLAMA_GENERATE ? "application/x-ndjson" : "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    metrics_count_request(&srv->metrics, x->route->name, 200);
    return ret;
}

/* The body as a JSON object, or NULL after answering 400. */
static cJSON *json_body(server *srv, struct MHD_Connection *c, exchange *x, enum MHD_Result *ret)
{
    api_error err;
    cJSON *root = oai_parse_object(textbuf_str(&x->body), x->body.n, &err);
    if (!root) *ret = send_error(srv, c, x, &err);
    return root;
}

/* The model the body names, loaded and held (NULL after answering). */
static served *body_model(server *srv, struct MHD_Connection *c, exchange *x, const cJSON *root, uint64_t *load_ns,
                          enum MHD_Result *ret)
{
    api_error err;
    const char *name = NULL;
    uint64_t ignored;
    if (!oai_field_string(root, "model", &name, &err)) {
        *ret = send_error(srv, c, x, &err);
        return NULL;
    }
    served *sv = router_acquire(srv->router, name, load_ns ? load_ns : &ignored, &err);
    if (!sv) *ret = send_error(srv, c, x, &err);
    return sv;
}

static enum MHD_Result completion(server *srv, struct MHD_Connection *c, exchange *x)
{
    uint64_t t_start = gen_now_ns(), load_ns = 0;
    enum MHD_Result ret;
    cJSON *root = json_body(srv, c, x, &ret);
    if (!root) return ret;
    api_error err;
    int64_t keep_alive;
    if (!ollama_keep_alive(root, &keep_alive, &err)) {
        cJSON_Delete(root);
        return send_error(srv, c, x, &err);
    }
    served *sv = body_model(srv, c, x, root, &load_ns, &ret);
    if (!sv) {
        cJSON_Delete(root);
        return ret;
    }
    if (engine_embeddings(sv->engine)) {
        const bool encoder = kinfer_model_encoder_only(sv->model);
        cJSON_Delete(root);
        router_release(srv->router, sv, keep_alive);
        return fail(srv, c, x, 400, "invalid_request_error",
                    encoder ? "this model is an encoder (embeddings only, as BERT): it serves "
                              "/v1/embeddings, /api/embed and /api/embeddings, no generation"
                            : "this server was started with --embeddings: it serves embeddings only "
                              "(/v1/embeddings, /api/embed, /api/embeddings), no generation");
    }
    request *r = request_new();
    api_call call = {0};
    bool ollama = x->route->kind >= API_OLLAMA_GENERATE;
    bool parsed = r && (ollama ? ollama_parse(sv, x->route->kind, root, r, &call, &err)
                               : oai_parse_completion_json(sv, x->route->kind, root, r, &call, &err));
    cJSON_Delete(root);
    call.t_start_ns = t_start;
    call.load_ns = load_ns;
    if (!r) oai_set_error(&err, 500, "server_error", "out of memory");
    if (!parsed || call.load_only) {
        /* an error, or Ollama's load (keep_alive 0: unload) without a prompt */
        bool unload = keep_alive == 0;
        char *json = parsed ? ollama_final_json(sv, &call, NULL, unload) : NULL;
        request_release(r);
        router_release(srv->router, sv, keep_alive);
        if (!parsed) return send_error(srv, c, x, &err);
        return send_json(srv, c, x, 200, json);
    }
    submit_result sr = engine_submit(sv->engine, r);
    if (sr != SUBMIT_OK) {
        request_release(r);
        router_release(srv->router, sv, keep_alive);
        return fail(srv, c, x, 503, "unavailable_error",
                    sr == SUBMIT_QUEUE_FULL ? "all slots are busy and the queue is full: retry later"
                                            : "the server is shutting down");
    }
    if (call.stream) return start_stream(srv, c, x, sv, keep_alive, r, &call);

    pthread_mutex_lock(&r->mu);
    bool here = wait_output(sv->engine, c, r);
    while (here && !r->done) {
        textbuf_clear(&r->text);    /* the whole text is in all_text */
        here = wait_output(sv->engine, c, r);
    }
    finish_reason fin = r->finish;
    pthread_mutex_unlock(&r->mu);
    if (!here) ret = MHD_NO;    /* nobody to answer */
    else if (fin == FINISH_ERROR) ret = fail(srv, c, x, 500, "server_error", r->error);
    else if (fin == FINISH_CANCELLED) ret = fail(srv, c, x, 503, "unavailable_error", "the server is shutting down");
    else ret = send_json(srv, c, x, 200, ollama ? ollama_final_json(sv, &call, r, false) : oai_final_json(sv, &call, r));
    request_release(r);
    router_release(srv->router, sv, keep_alive);
    return ret;
}

/* POST /v1/embeddings, Ollama's /api/embed and its older /api/embeddings
 * ({prompt} -> {embedding}): the inputs of one request go
 * to the engine, which batches them with other requests' (engine.h). */
static enum MHD_Result embeddings(server *srv, struct MHD_Connection *c, exchange *x)
{
    embed_call call = {.ollama = x->route->ollama, .legacy = !strcmp(x->route->path, "/api/embeddings"),
                       .t_start_ns = gen_now_ns()};
    enum MHD_Result ret;
    cJSON *root = json_body(srv, c, x, &ret);
    if (!root) return ret;
    api_error err;
    int64_t keep_alive = KEEP_ALIVE_UNSET;
    if (call.ollama && !ollama_keep_alive(root, &keep_alive, &err)) {
        cJSON_Delete(root);
        return send_error(srv, c, x, &err);
    }
    served *sv = body_model(srv, c, x, root, &call.load_ns, &ret);
    if (!sv) {
        cJSON_Delete(root);
        return ret;
    }
    request *r = request_new();
    if (!r) oai_set_error(&err, 500, "server_error", "out of memory");
    bool parsed = r && embed_parse(sv, root, &call, r, &err);
    cJSON_Delete(root);
    if (!parsed) {
        request_release(r);
        router_release(srv->router, sv, keep_alive);
        return send_error(srv, c, x, &err);
    }
    if (r->n_inputs == 0) { /* /api/embeddings with an empty prompt: the model is loaded, that is all */
        ret = send_json(srv, c, x, 200, embed_answer(sv, &call, r));
        request_release(r);
        router_release(srv->router, sv, keep_alive);
        return ret;
    }
    submit_result sr = engine_submit(sv->engine, r);
    if (sr != SUBMIT_OK) {
        request_release(r);
        router_release(srv->router, sv, keep_alive);
        return fail(srv, c, x, 503, "unavailable_error",
                    sr == SUBMIT_QUEUE_FULL ? "the queue is full: retry later" : "the server is shutting down");
    }
    pthread_mutex_lock(&r->mu);
    bool here = wait_output(sv->engine, c, r);
    finish_reason fin = r->finish;
    pthread_mutex_unlock(&r->mu);
    if (!here) ret = MHD_NO;
    else if (fin == FINISH_ERROR) ret = fail(srv, c, x, 500, "server_error", r->error);
    else if (fin == FINISH_CANCELLED) ret = fail(srv, c, x, 503, "unavailable_error", "the server is shutting down");
    else ret = send_json(srv, c, x, 200, embed_answer(sv, &call, r));
    request_release(r);
    router_release(srv->router, sv, keep_alive);
    return ret;
}

/* ------------------------------------------------------------ other routes */

/* 200 once the router is up (with -m: the model loaded); models being
 * loaded are listed with their progress. */
static enum MHD_Result health(server *srv, struct MHD_Connection *c, exchange *x)
{
    if (!router_ready(srv->router)) return fail(srv, c, x, 503, "unavailable_error", "Loading model");
    router_entry *e = NULL;
    int n = router_list(srv->router, &e);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", "ok");
    cJSON *loading = cJSON_AddArrayToObject(root, "loading");
    for (int i = 0; i < n; i++) {
        if (!e[i].loading) continue;
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "model", e[i].name);
        cJSON_AddNumberToObject(m, "progress", e[i].progress);
        cJSON_AddItemToArray(loading, m);
    }
    free(e);
    return send_cjson(srv, c, x, 200, root);
}

/* Every model the server has (the directory's, loaded or not). */
static enum MHD_Result models(server *srv, struct MHD_Connection *c, exchange *x)
{
    router_entry *e = NULL;
    int n = router_list(srv->router, &e);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    for (int i = 0; i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", e[i].name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)(e[i].mtime ? e[i].mtime : srv->created));
        cJSON_AddStringToObject(m, "owned_by", "kinfer");
        cJSON *meta = cJSON_AddObjectToObject(m, "meta");
        cJSON_AddStringToObject(meta, "status", e[i].loaded ? "loaded" : e[i].loading ? "loading" : "unloaded");
        cJSON_AddNumberToObject(meta, "size", (double)e[i].file_bytes);
        served *sv = e[i].loaded ? router_acquire_loaded(srv->router, e[i].name) : NULL;
        if (sv) {
            cJSON_AddNumberToObject(meta, "n_vocab", kinfer_vocab_n_tokens(sv->model));
            cJSON_AddNumberToObject(meta, "n_ctx_train", kinfer_model_n_ctx_train(sv->model));
            cJSON_AddNumberToObject(meta, "n_ctx_slot", engine_n_ctx_slot(sv->engine));
            cJSON_AddNumberToObject(meta, "n_slots", engine_n_slots(sv->engine));
            cJSON_AddNumberToObject(meta, "memory_bytes", (double)e[i].mem_bytes);
            router_unhold(srv->router, sv);
        }
        if (e[i].error[0]) cJSON_AddStringToObject(meta, "error", e[i].error);
        cJSON_AddItemToArray(data, m);
    }
    free(e);
    return send_cjson(srv, c, x, 200, root);
}

/* The slots of every loaded model. */
static enum MHD_Result slots(server *srv, struct MHD_Connection *c, exchange *x)
{
    router_entry *e = NULL;
    int n = router_list(srv->router, &e);
    cJSON *arr = cJSON_CreateArray();
    for (int k = 0; k < n; k++) {
        served *sv = e[k].loaded ? router_acquire_loaded(srv->router, e[k].name) : NULL;
        if (!sv) continue;
        int32_t n_slots = engine_n_slots(sv->engine);
        slot_info *info = calloc((size_t)n_slots, sizeof *info);
        if (info) engine_slots(sv->engine, info);
        for (int32_t i = 0; info && i < n_slots; i++) {
            cJSON *s = cJSON_CreateObject();
            cJSON_AddNumberToObject(s, "id", info[i].id);
            cJSON_AddStringToObject(s, "model", sv->alias);
            cJSON_AddNumberToObject(s, "n_ctx", engine_n_ctx_slot(sv->engine));
            cJSON_AddBoolToObject(s, "is_processing", strcmp(info[i].state, "idle") != 0);
            cJSON_AddStringToObject(s, "state", info[i].state);
            cJSON_AddNumberToObject(s, "n_cached_tokens", info[i].n_cache);
            cJSON_AddNumberToObject(s, "n_prompt_tokens", info[i].n_prompt);
            cJSON_AddNumberToObject(s, "n_prompt_processed", info[i].n_prompt_done);
            cJSON_AddNumberToObject(s, "n_decoded", info[i].n_generated);
            cJSON_AddItemToArray(arr, s);
        }
        free(info);
        router_unhold(srv->router, sv);
    }
    free(e);
    return send_cjson(srv, c, x, 200, arr);
}

static enum MHD_Result metrics_route(server *srv, struct MHD_Connection *c, exchange *x)
{
    if (!srv->opt.metrics_enabled)
        return fail(srv, c, x, 501, "not_supported_error", "metrics are off: start the server with --metrics");
    metrics total;
    metrics_init(&total);
    metrics_accumulate(&total, &srv->metrics);
    textbuf per_model = {0}, out = {0};
    router_metrics(srv->router, &total, &per_model);
    metrics_render(&total, &out);
    textbuf_append(&out, per_model.p, per_model.n);
    metrics_destroy(&total);
    enum MHD_Result ret = send_body(srv, c, x, 200, "text/plain; version=0.0.4", textbuf_str(&out), out.n);
    textbuf_free(&out);
    textbuf_free(&per_model);
    return ret;
}

static enum MHD_Result tokenize(server *srv, struct MHD_Connection *c, exchange *x)
{
    enum MHD_Result ret;
    cJSON *root = json_body(srv, c, x, &ret);
    if (!root) return ret;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(root, "add_special");
    const cJSON *pieces = cJSON_GetObjectItemCaseSensitive(root, "with_pieces");
    if (!cJSON_IsString(content)) {
        cJSON_Delete(root);
        return fail(srv, c, x, 400, "invalid_request_error", "'content' must be a string");
    }
    if ((add && !cJSON_IsBool(add)) || (pieces && !cJSON_IsBool(pieces))) {
        cJSON_Delete(root);
        return fail(srv, c, x, 400, "invalid_request_error", "'add_special' and 'with_pieces' must be booleans");
    }
    served *sv = body_model(srv, c, x, root, NULL, &ret);
    if (!sv) {
        cJSON_Delete(root);
        return ret;
    }
    api_error err;
    int32_t n = 0;
    kinfer_token *t = oai_tokenize(sv, content->valuestring, strlen(content->valuestring), cJSON_IsTrue(add), &n, &err);
    bool with_pieces = cJSON_IsTrue(pieces); /* (read before root, which holds it, is freed) */
    cJSON_Delete(root);
    if (!t) {
        router_release(srv->router, sv, KEEP_ALIVE_UNSET);
        return send_error(srv, c, x, &err);
    }
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, "tokens");
    for (int32_t i = 0; i < n; i++) {
        if (!with_pieces) {
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(t[i]));
            continue;
        }
        char piece[256];
        int32_t k = kinfer_token_to_piece(sv->model, t[i], piece, sizeof piece - 1, true);
        piece[k > 0 ? k : 0] = '\0';
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "id", t[i]);
        oai_add_text(p, "piece", piece, strlen(piece));
        cJSON_AddItemToArray(arr, p);
    }
    free(t);
    router_release(srv->router, sv, KEEP_ALIVE_UNSET);
    return send_cjson(srv, c, x, 200, out);
}

/* llama-server's detokenize: the tokens' pieces (special ones rendered) joined. */
static enum MHD_Result detokenize(server *srv, struct MHD_Connection *c, exchange *x)
{
    enum MHD_Result ret;
    cJSON *root = json_body(srv, c, x, &ret);
    if (!root) return ret;
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    if (!cJSON_IsArray(tokens)) {
        cJSON_Delete(root);
        return fail(srv, c, x, 400, "invalid_request_error", "'tokens' must be an array of token ids");
    }
    served *sv = body_model(srv, c, x, root, NULL, &ret);
    if (!sv) {
        cJSON_Delete(root);
        return ret;
    }
    int32_t n_vocab = kinfer_vocab_n_tokens(sv->model);
    textbuf text = {0};
    const cJSON *v;
    bool ok = true;
    cJSON_ArrayForEach(v, tokens)
    {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= n_vocab || v->valuedouble != (int32_t)v->valuedouble) {
            ok = false;
            break;
        }
        char piece[256];
        int32_t k = kinfer_token_to_piece(sv->model, (kinfer_token)v->valuedouble, piece, sizeof piece, true);
        if (k > 0) textbuf_append(&text, piece, (size_t)k);
    }
    cJSON_Delete(root);
    router_release(srv->router, sv, KEEP_ALIVE_UNSET);
    if (!ok) {
        textbuf_free(&text);
        return fail(srv, c, x, 400, "invalid_request_error", "'tokens' must hold token ids of this model's vocabulary");
    }
    cJSON *out = cJSON_CreateObject();
    oai_add_text(out, "content", textbuf_str(&text), text.n);
    textbuf_free(&text);
    return send_cjson(srv, c, x, 200, out);
}

/* ------------------------------------------------------------ Ollama's */

static enum MHD_Result ollama_list_route(server *srv, struct MHD_Connection *c, exchange *x)
{
    bool ps = !strcmp(x->route->path, "/api/ps");
    return send_cjson(srv, c, x, 200, ps ? ollama_ps(srv->router) : ollama_tags(srv->router));
}

static enum MHD_Result ollama_show_route(server *srv, struct MHD_Connection *c, exchange *x)
{
    enum MHD_Result ret;
    cJSON *root = json_body(srv, c, x, &ret);
    if (!root) return ret;
    api_error err;
    cJSON *out = ollama_show(srv->router, root, &err);
    cJSON_Delete(root);
    return out ? send_cjson(srv, c, x, 200, out) : send_error(srv, c, x, &err);
}

static enum MHD_Result ollama_version(server *srv, struct MHD_Connection *c, exchange *x)
{
    static const char v[] = "{\"version\":\"" KINFER_SERVER_VERSION "\"}";
    return send_body(srv, c, x, 200, "application/json", v, sizeof v - 1);
}

/* What Ollama's clients probe first. */
static enum MHD_Result root_page(server *srv, struct MHD_Connection *c, exchange *x)
{
    static const char text[] = "kinfer-server is running";
    return send_body(srv, c, x, 200, "text/plain; charset=utf-8", text, sizeof text - 1);
}

/* Model management (pull, push, create, copy, delete, blobs) is Ollama's,
 * not kinfer's: a model is a file in the directory. */
static enum MHD_Result ollama_not_here(server *srv, struct MHD_Connection *c, exchange *x)
{
    char msg[200];
    snprintf(msg, sizeof msg, "%s is not supported by kinfer-server: models are the .gguf files of --models-dir",
             x->route->path);
    return fail(srv, c, x, 501, "not_supported_error", msg);
}

static const route routes[] = {
    {"/health", "GET", "/health", health, 0, true, false},
    {"/v1/health", "GET", "/health", health, 0, true, false},
    {"/v1/models", "GET", "/v1/models", models, 0, false, false},
    {"/models", "GET", "/v1/models", models, 0, false, false},
    {"/slots", "GET", "/slots", slots, 0, false, false},
    {"/metrics", "GET", "/metrics", metrics_route, 0, false, false},
    {"/tokenize", "POST", "/tokenize", tokenize, 0, false, false},
    {"/detokenize", "POST", "/detokenize", detokenize, 0, false, false},
    {"/v1/chat/completions", "POST", "/v1/chat/completions", completion, API_CHAT, false, false},
    {"/chat/completions", "POST", "/v1/chat/completions", completion, API_CHAT, false, false},
    {"/v1/completions", "POST", "/v1/completions", completion, API_COMPLETIONS, false, false},
    {"/completions", "POST", "/v1/completions", completion, API_COMPLETIONS, false, false},
    {"/completion", "POST", "/completion", completion, API_NATIVE, false, false},
    {"/infill", "POST", "/infill", completion, API_INFILL, false, false},
    {"/", "GET", "/", root_page, 0, true, true},
    {"/", "HEAD", "/", root_page, 0, true, true},
    {"/api/generate", "POST", "/api/generate", completion, API_OLLAMA_GENERATE, false, true},
    {"/api/chat", "POST", "/api/chat", completion, API_OLLAMA_CHAT, false, true},
    {"/api/tags", "GET", "/api/tags", ollama_list_route, 0, false, true},
    {"/api/ps", "GET", "/api/ps", ollama_list_route, 0, false, true},
    {"/api/show", "POST", "/api/show", ollama_show_route, 0, false, true},
    {"/api/version", "GET", "/api/version", ollama_version, 0, false, true},
    {"/api/pull", "POST", "/api/pull", ollama_not_here, 0, false, true},
    {"/api/push", "POST", "/api/push", ollama_not_here, 0, false, true},
    {"/api/create", "POST", "/api/create", ollama_not_here, 0, false, true},
    {"/api/copy", "POST", "/api/copy", ollama_not_here, 0, false, true},
    {"/api/delete", "DELETE", "/api/delete", ollama_not_here, 0, false, true},
    {"/v1/embeddings", "POST", "/v1/embeddings", embeddings, 0, false, false},
    {"/embeddings", "POST", "/v1/embeddings", embeddings, 0, false, false},
    {"/api/embed", "POST", "/api/embed", embeddings, 0, false, true},
    {"/api/embeddings", "POST", "/api/embeddings", embeddings, 0, false, true},
    {"/api/blobs/", "POST", "/api/blobs", ollama_not_here, 0, false, true},   /* (a prefix: /api/blobs/DIGEST) */
};

/* The route of (url, method); a path known under another method sets
 * wrong_method. */
static const route *find_route(const char *url, const char *method, bool *wrong_method)
{
    *wrong_method = false;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const char *p = routes[i].path;
        size_t n = strlen(p);
        bool prefix = p[n - 1] == '/' && n > 1;
        if (prefix ? strncmp(p, url, n) != 0 : strcmp(p, url) != 0) continue;
        if (prefix && !strcmp(method, "HEAD")) return &routes[i];
        if (!strcmp(routes[i].method, method)) return &routes[i];
        *wrong_method = true;
    }
    return NULL;
}

/* ------------------------------------------------------------ the gate */

/* Equal in time that depends on the lengths only, not on where they differ. */
static bool key_equal(const char *given, const char *key)
{
    size_t n = strlen(given), m = strlen(key);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < m; i++) diff |= (unsigned char)(key[i] ^ (i < n ? given[i] : 0));
    return diff == 0;
}

static bool authorized(const server *srv, struct MHD_Connection *c)
{
    if (!srv->opt.api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7)) return false;
    return key_equal(h + 7, srv->opt.api_key);
}

static enum MHD_Result dispatch(server *srv, struct MHD_Connection *c, exchange *x, const char *method)
{
    if (!strcmp(method, "OPTIONS")) {   /* CORS preflight of browser front-ends */
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_NO_CONTENT, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (!x->route && x->wrong_method) return fail(srv, c, x, 405, "invalid_request_error", "method not allowed on this route");
    if (!x->route) return fail(srv, c, x, 404, "not_found_error", "no such route");
    if (!x->route->open && !authorized(srv, c)) return fail(srv, c, x, 401, "authentication_error", "Invalid API Key");
    if (x->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes (--max-body)", srv->opt.max_body);
        return fail(srv, c, x, 413, "invalid_request_error", msg);
    }
    if (!x->route->open && !router_ready(srv->router)) return fail(srv, c, x, 503, "unavailable_error", "Loading model");
    return x->route->fn(srv, c, x);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    server *srv = cls;
    exchange *x = *con_cls;
    if (!x) {   /* the headers: choose the route, wait for the body */
        if (!(x = calloc(1, sizeof *x))) return MHD_NO;
        x->route = find_route(url, method, &x->wrong_method);
        *con_cls = x;
        return MHD_YES;
    }
    if (*upload_data_size) {    /* a piece of the body; past the limit it is read and dropped */
        if (!x->too_large && x->body.n + *upload_data_size <= srv->opt.max_body)
            x->too_large = !textbuf_append(&x->body, upload_data, *upload_data_size);
        else
            x->too_large = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(srv, c, x, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)c, (void)why;
    exchange *x = *con_cls;
    if (!x) return;
    textbuf_free(&x->body);
    free(x);
    *con_cls = NULL;
}

/* Each SSE event is a small write: without TCP_NODELAY, Nagle's algorithm
 * and the client's delayed ACK hold every second token back ~40 ms. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls, (void)socket_context;
    if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    int one = 1;
    if (ci) setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

http_server *http_start(server *srv, char *err, size_t err_size)
{
    http_server *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    h->srv = srv;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->opt.port)};
    if (inet_pton(AF_INET, srv->opt.host, &addr.sin_addr) != 1) {
        snprintf(err, err_size, "--host %s: not an IPv4 address", srv->opt.host);
        free(h);
        return NULL;
    }
    h->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                                 (uint16_t)srv->opt.port, NULL, NULL, on_request, srv,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                                 MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                                 MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                                 MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, err_size, "cannot listen on %s:%d: %s", srv->opt.host, srv->opt.port, strerror(errno));
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : srv->opt.port;
    return h;
}

void http_quiesce(http_server *h)
{
    if (h) MHD_quiesce_daemon(h->daemon);
}

void http_stop(http_server *h)
{
    if (!h) return;
    MHD_stop_daemon(h->daemon);
    free(h);
}

int http_port(const http_server *h) { return h->port; }
