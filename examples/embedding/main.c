/*
 * kinfer-embedding — embeddings of text, as llama.cpp's llama-embedding.
 *
 *   kinfer-embedding -m model.gguf -p "first text\nsecond text" [options]
 *
 * The prompt (-p, or -f FILE) is split at --embd-separator (default a
 * newline) into inputs; each is tokenized (BOS as the model adds it,
 * special tokens parsed, as llama-embedding does), and the inputs are
 * decoded together, each as its own sequence, as many per batch as fit in
 * the context.  Output, on stdout, one embedding per line (pooling none: one
 * per token) of floats, normalised by --embd-normalize (default 2,
 * euclidean), or --embd-output-format json / array as llama-embedding
 * writes them.
 */
#include <kinfer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/args.h"

#define MAX_SEQ_PER_BATCH 64

typedef struct options {
    const char *model, *prompt, *prompt_file, *separator, *format;
    int n_ctx, n_batch, n_threads, normalize;
    kinfer_pooling pooling;
    kinfer_flash_attn flash_attn;
} options;

static void usage(void)
{
    fprintf(stderr,
            "usage: kinfer-embedding -m model.gguf (-p TEXT | -f FILE) [options]\n"
            "  --embd-separator S      split the prompt into inputs at S (default \\n)\n"
            "  --embd-normalize N      -1 none, 0 max-abs int16, 1 taxicab, 2 euclidean (default),\n"
            "                          N > 2 p-norm\n"
            "  --embd-output-format F  \"\" one line of floats per embedding (default), json, array\n"
            "  --pooling P             none, mean, cls, last (default: the model's)\n"
            "  -c N                    context size, tokens per batch (default 2048)\n"
            "  -ub N                   micro-batch (default 512)\n"
            "  -t N                    threads (default: all cores)\n"
            "  -fa on|off|auto         flash attention (default auto)\n");
    exit(1);
}

static kinfer_pooling parse_pooling(const char *s)
{
    static const char *const names[] = {"none", "mean", "cls", "last", "rank"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) return (kinfer_pooling)i;
    args_die("--pooling: '%s' is not one of none, mean, cls, last, rank", s);
}

static options parse(int argc, char **argv)
{
    options o = {.separator = "\n", .format = "", .n_ctx = 2048, .n_batch = 512, .normalize = 2,
                 .pooling = KINFER_POOLING_UNSPECIFIED, .flash_attn = KINFER_FLASH_ATTN_AUTO};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) usage();
        if (i + 1 >= argc) args_die("%s needs a value (see --help)", a);
        const char *v = argv[++i];
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) o.model = v;
        else if (strcmp(a, "-p") == 0 || strcmp(a, "--prompt") == 0) o.prompt = v;
        else if (strcmp(a, "-f") == 0 || strcmp(a, "--file") == 0) o.prompt_file = v;
        else if (strcmp(a, "--embd-separator") == 0) o.separator = v;
        else if (strcmp(a, "--embd-output-format") == 0) o.format = v;
        else if (strcmp(a, "--embd-normalize") == 0) o.normalize = (int)args_int(a, v, -1, 1000);
        else if (strcmp(a, "--pooling") == 0) o.pooling = parse_pooling(v);
        else if (strcmp(a, "-c") == 0 || strcmp(a, "--ctx-size") == 0) o.n_ctx = (int)args_int(a, v, 1, 1 << 24);
        else if (strcmp(a, "-ub") == 0 || strcmp(a, "--ubatch-size") == 0) o.n_batch = (int)args_int(a, v, 1, 65536);
        else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) o.n_threads = (int)args_int(a, v, 1, 1024);
        else if (strcmp(a, "-fa") == 0 || strcmp(a, "--flash-attn") == 0) o.flash_attn = args_flash_attn(a, v);
        else args_die("unknown option '%s' (see --help)", a);
    }
    if (!o.model) args_die("-m model.gguf is required");
    if (!o.prompt == !o.prompt_file) args_die("give the text with -p or -f (one of them)");
    if (!o.separator[0]) args_die("--embd-separator must not be empty");
    if (strcmp(o.format, "") && strcmp(o.format, "json") && strcmp(o.format, "array"))
        args_die("--embd-output-format: '%s' is not one of \"\", json, array", o.format);
    return o;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) args_die("cannot open %s", path);
    size_t cap = 1 << 16, len = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *p = realloc(buf, 2 * cap + 1);
            if (!p) free(buf);
            buf = p;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) args_die("out of memory reading %s", path);
    buf[len] = '\0';
    /* a file's final newline ends its last line; it starts no empty input */
    if (len && buf[len - 1] == '\n') buf[len - 1] = '\0';
    return buf;
}

typedef struct input {
    kinfer_token *tokens;
    int n;
} input;

/* The prompt cut at sep, each piece tokenized. */
static input *tokenize_inputs(const kinfer_model *m, char *text, const char *sep, int n_ctx, int *n_out)
{
    int n = 1;
    for (char *p = text; (p = strstr(p, sep)); p += strlen(sep)) n++;
    input *in = calloc((size_t)n, sizeof *in);
    if (!in) args_die("out of memory");
    char *piece = text;
    for (int i = 0; i < n; i++) {
        char *end = i + 1 < n ? strstr(piece, sep) : piece + strlen(piece);
        const size_t len = (size_t)(end - piece);
        kinfer_error err = {0};
        int64_t k = kinfer_tokenize(m, piece, len, NULL, 0, true, true, &err);
        if (k == 0 && err.status) args_die("input %d: tokenize: %s", i, err.message);
        if (k < 0) k = -k;
        if (k == 0) args_die("input %d is empty: it has no tokens", i);
        if (k > n_ctx)
            args_die("input %d has %lld tokens, more than the context of %d (raise -c)", i,
                     (long long)k, n_ctx);
        in[i].tokens = malloc((size_t)k * sizeof *in[i].tokens);
        if (!in[i].tokens) args_die("out of memory");
        in[i].n = (int)kinfer_tokenize(m, piece, len, in[i].tokens, k, true, true, &err);
        piece = end + strlen(sep);
    }
    *n_out = n;
    return in;
}

/* Decode inputs [i0, i1) as sequences 0.. of one batch into out (rows of
 * n_embd, normalised): one row per input, or per token for pooling none. */
static float *decode_batch(kinfer_context *ctx, const input *in, int i0, int i1, int n_embd,
                           int normalize, float *out)
{
    int n = 0;
    for (int i = i0; i < i1; i++) n += in[i].n;
    kinfer_token *tok = malloc((size_t)n * sizeof *tok);
    kinfer_pos *pos = malloc((size_t)n * sizeof *pos);
    kinfer_seq_id *seq = malloc((size_t)n * sizeof *seq);
    if (!tok || !pos || !seq) args_die("out of memory for a batch of %d tokens", n);
    int t = 0;
    for (int i = i0; i < i1; i++)
        for (int j = 0; j < in[i].n; j++, t++) {
            tok[t] = in[i].tokens[j];
            pos[t] = j;
            seq[t] = i - i0;
        }
    kinfer_kv_clear(ctx);
    const kinfer_batch batch = {.n_tokens = n, .token = tok, .pos = pos, .seq_id = seq};
    kinfer_status st = kinfer_decode(ctx, &batch);
    if (st) args_die("decode: %s: %s", kinfer_status_str(st), kinfer_context_errmsg(ctx));
    const int per_token = kinfer_context_pooling(ctx) == KINFER_POOLING_NONE;
    for (int r = 0; r < (per_token ? n : i1 - i0); r++, out += n_embd) {
        const float *e = per_token ? kinfer_get_embeddings_ith(ctx, r) : kinfer_get_embeddings_seq(ctx, r);
        if (!e) args_die("no embedding for %s %d", per_token ? "token" : "input", r);
        kinfer_embd_normalize(e, out, n_embd, normalize);
    }
    free(tok);
    free(pos);
    free(seq);
    return out;
}

static void print_embeddings(const options *o, const float *emb, int n_rows, int n_embd)
{
    const char *num = o->normalize == 0 ? "%1.0f" : "%1.7f";
    const int json = strcmp(o->format, "json") == 0, array = strcmp(o->format, "array") == 0;
    if (json) printf("{\n  \"object\": \"list\",\n  \"data\": [\n");
    if (array) printf("[");
    for (int j = 0; j < n_rows; j++) {
        if (json) printf("    {\n      \"object\": \"embedding\",\n      \"index\": %d,\n      \"embedding\": ", j);
        if (json || array) printf("[");
        for (int i = 0; i < n_embd; i++) {
            printf(num, emb[(size_t)j * n_embd + i]);
            if (i + 1 < n_embd) fputs(json || array ? "," : " ", stdout);
        }
        if (json) printf("]\n    }%s", j + 1 < n_rows ? ",\n" : "");
        else if (array) printf("]%s", j + 1 < n_rows ? "," : "");
        else printf("\n");
    }
    if (json) printf("\n  ]\n}\n");
    if (array) printf("]\n");
}

int main(int argc, char **argv)
{
    args_program("kinfer-embedding");
    options o = parse(argc, argv);
    char *text = o.prompt_file ? read_text(o.prompt_file) : strdup(o.prompt);
    if (!text) args_die("out of memory");

    kinfer_model *m = NULL;
    kinfer_status st = kinfer_model_load(o.model, NULL, &m);
    if (st) args_die("%s: %s: %s", o.model, kinfer_status_str(st), kinfer_model_errmsg(m));
    int n_in = 0;
    input *in = tokenize_inputs(m, text, o.separator, o.n_ctx, &n_in);

    kinfer_context_params cp = kinfer_context_default_params();
    cp.n_ctx = (uint32_t)o.n_ctx;
    cp.n_batch = (uint32_t)o.n_batch;
    /* as llama-embedding: an encoder sees a whole batch in one micro-batch */
    if (kinfer_model_encoder_only(m)) cp.n_batch = cp.n_ctx;
    cp.n_seq_max = MAX_SEQ_PER_BATCH;
    cp.n_threads = o.n_threads;
    cp.flash_attn = o.flash_attn;
    cp.embeddings = true;
    cp.pooling = o.pooling;
    kinfer_context *ctx = NULL;
    if ((st = kinfer_context_new(m, &cp, &ctx)))
        args_die("context: %s: %s", kinfer_status_str(st), kinfer_context_errmsg(ctx));

    const int n_embd = kinfer_model_n_embd(m);
    const int per_token = kinfer_context_pooling(ctx) == KINFER_POOLING_NONE;
    int n_rows = 0;
    for (int i = 0; i < n_in; i++) n_rows += per_token ? in[i].n : 1;
    float *emb = malloc((size_t)n_rows * (size_t)n_embd * sizeof *emb);
    if (!emb) args_die("out of memory for %d embeddings", n_rows);

    /* as many inputs per batch as the context and the sequence ids allow */
    float *out = emb;
    for (int i0 = 0, i1; i0 < n_in; i0 = i1) {
        int tokens = 0;
        for (i1 = i0; i1 < n_in && i1 - i0 < MAX_SEQ_PER_BATCH && tokens + in[i1].n <= o.n_ctx; i1++)
            tokens += in[i1].n;
        out = decode_batch(ctx, in, i0, i1, n_embd, o.normalize, out);
    }
    print_embeddings(&o, emb, n_rows, n_embd);

    free(emb);
    for (int i = 0; i < n_in; i++) free(in[i].tokens);
    free(in);
    free(text);
    kinfer_context_free(ctx);
    kinfer_model_free(m);
    return 0;
}
