/*
 * kinfer-server — an OpenAI- and llama-server-compatible HTTP server with
 * continuous batching and a prompt cache.
 *
 *   kinfer-server -m model.gguf [--port 8080] [-np 4] [-c 4096]
 *
 * main: flags (llama-server's names), the HTTP side first (so /health
 * answers 503 while the model loads), then the model and the engine, then
 * wait for SIGINT/SIGTERM: stop accepting, cancel what is in flight, exit 0.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/args.h"
#include "http.h"
#include "server.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kinfer-server -m MODEL.gguf [options]\n"
            "\n"
            "Serves the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models) and\n"
            "llama-server's (/completion, /infill, /tokenize, /detokenize, /health, /slots,\n"
            "/metrics).  Flags mean what llama-server's do.\n"
            "\n"
            "  -m, --model FILE            GGUF model\n"
            "  -a, --alias NAME            the model name clients see (default: the file name)\n"
            "  --host ADDR                 IPv4 address to bind (default 127.0.0.1)\n"
            "  --port N                    TCP port (default 8080; 0 = any free one, printed)\n"
            "  -c, --ctx-size N            KV cache cells in all (default 4096); each slot holds\n"
            "                              up to N / -np of them\n"
            "  -np, --parallel N           slots: requests decoded together (default 4)\n"
            "  -b, --batch-size N          prompt tokens per scheduler step (default 2048)\n"
            "  -ub, --ubatch-size N        tokens per micro-batch of a step (default 512)\n"
            "  -t, --threads N             threads (default: one per core)\n"
            "  -n, --n-predict N           default tokens per request (-1 = until the slot is full)\n"
            "  --temp X                    default temperature (default 0.8)\n"
            "  -s, --seed N                default seed (-1 = random per request)\n"
            "  --chat-template NAME        a built-in template instead of the model's\n"
            "  --api-key KEY               require 'Authorization: Bearer KEY' (also KINFER_API_KEY);\n"
            "                              /health stays open\n"
            "  --metrics                   enable GET /metrics (Prometheus text)\n"
            "  --max-body BYTES            largest request body (default 8388608)\n"
            "  --max-queue N               requests waiting for a slot before 503 (default 256)\n"
            "  -ctk, --cache-type-k T      KV key type: f16 (default), q8_0, f32\n"
            "  -ctv, --cache-type-v T      KV value type\n"
            "  -ngl, --n-gpu-layers N      layers on the GPU (-1 = as many as fit, 0 = none)\n"
            "  -fa, --flash-attn on|off|auto  flash attention (default auto: on, as llama.cpp)\n"
            "  -h, --help, --version\n");
}

static void parse_args(int argc, char **argv, server_options *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_body = 8u << 20;
    o->n_predict = -1;
    o->temperature = 0.8f;
    o->seed = -1;
    o->api_key = getenv("KINFER_API_KEY");
    engine_params *e = &o->engine;
    e->cparams = kinfer_context_default_params();
    e->cparams.n_ctx = 4096;
    e->n_slots = 4;
    e->n_batch = 2048;
    e->queue_cap = 256;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
#define IS(x) (!strcmp(f, x))
        if (IS("-h") || IS("--help")) {
            usage(stdout);
            exit(0);
        }
        if (IS("--version")) {
            printf("kinfer-server %s (libkinfer %s)\n", KINFER_SERVER_VERSION, kinfer_version());
            exit(0);
        }
        if (IS("--metrics")) {
            o->metrics_enabled = true;
            continue;
        }
        if (IS("--cont-batching") || IS("-cb")) continue;   /* always on */
        if (i + 1 >= argc) args_die("%s needs a value, or is unknown (see -h)", f);
        const char *v = argv[++i];
        if (IS("-m") || IS("--model")) o->model_path = v;
        else if (IS("-a") || IS("--alias")) o->alias = v;
        else if (IS("--host")) o->host = v;
        else if (IS("--port")) o->port = (int)args_int(f, v, 0, 65535);
        else if (IS("-c") || IS("--ctx-size")) e->cparams.n_ctx = (uint32_t)args_int(f, v, 0, INT32_MAX);
        else if (IS("-np") || IS("--parallel")) e->n_slots = (int32_t)args_int(f, v, 1, KINFER_MAX_SEQ);
        else if (IS("-b") || IS("--batch-size")) e->n_batch = (int32_t)args_int(f, v, 1, 1 << 20);
        else if (IS("-ub") || IS("--ubatch-size")) e->cparams.n_batch = (uint32_t)args_int(f, v, 1, 1 << 20);
        else if (IS("-t") || IS("--threads")) e->cparams.n_threads = (int32_t)args_int(f, v, -1, 4096);
        else if (IS("-n") || IS("--n-predict")) o->n_predict = (int32_t)args_int(f, v, -1, INT32_MAX);
        else if (IS("--temp")) o->temperature = args_float(f, v);
        else if (IS("-s") || IS("--seed")) o->seed = args_int(f, v, -1, INT64_MAX);
        else if (IS("--chat-template")) o->chat_template = v;
        else if (IS("--api-key")) o->api_key = v;
        else if (IS("--max-body")) o->max_body = (size_t)args_int(f, v, 1, 1ll << 32);
        else if (IS("--max-queue")) e->queue_cap = (int32_t)args_int(f, v, 1, 1 << 20);
        else if (IS("-ctk") || IS("--cache-type-k")) e->cparams.type_k = args_kv_type(f, v);
        else if (IS("-ctv") || IS("--cache-type-v")) e->cparams.type_v = args_kv_type(f, v);
        else if (IS("-ngl") || IS("--n-gpu-layers") || IS("--gpu-layers"))
            e->cparams.n_gpu_layers = (int32_t)args_int(f, v, -1, INT32_MAX);
        else if (IS("-fa") || IS("--flash-attn")) e->cparams.flash_attn = args_flash_attn(f, v);
        else args_die("unknown option %s (see -h)", f);
#undef IS
    }
    if (!o->model_path) {
        usage(stderr);
        args_die("no model given (-m)");
    }
    if (o->api_key && !*o->api_key) o->api_key = NULL;
    if (e->cparams.n_threads < 0) e->cparams.n_threads = 0;
    if (!o->alias) {
        const char *slash = strrchr(o->model_path, '/');
        o->alias = slash ? slash + 1 : o->model_path;
    }
}

int main(int argc, char **argv)
{
    args_program("kinfer-server");
    server srv = {0};
    parse_args(argc, argv, &srv.opt);
    srv.template_used = srv.opt.chat_template;
    srv.created = (int64_t)time(NULL);
    metrics_init(&srv.metrics);

    /* Signals are taken by sigwait below, in this thread only. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    char err[256];
    http_server *http = http_start(&srv, err, sizeof err);
    if (!http) args_die("%s", err);
    fprintf(stderr, "kinfer-server: listening on http://%s:%d\n", srv.opt.host, http_port(http));

    kinfer_status st = kinfer_model_load(srv.opt.model_path, NULL, &srv.model);
    if (st != KINFER_OK) {
        fprintf(stderr, "kinfer-server: %s: %s\n", srv.opt.model_path,
                srv.model ? kinfer_model_errmsg(srv.model) : kinfer_status_str(st));
        http_stop(http);
        kinfer_model_free(srv.model);
        return 1;
    }
    srv.engine = engine_start(srv.model, &srv.opt.engine, &srv.metrics, err, sizeof err);
    if (!srv.engine) {
        fprintf(stderr, "kinfer-server: %s\n", err);
        http_stop(http);
        kinfer_model_free(srv.model);
        return 1;
    }
    atomic_store(&srv.ready, true);
    fprintf(stderr, "kinfer-server: %s ready: %d slots of %d tokens\n", srv.opt.alias,
            engine_n_slots(srv.engine), engine_n_ctx_slot(srv.engine));

    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "kinfer-server: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_quiesce(http);
    engine_stop(srv.engine);   /* in-flight requests end as cancelled */
    http_stop(http);
    engine_free(srv.engine);
    kinfer_model_free(srv.model);
    metrics_destroy(&srv.metrics);
    return 0;
}
