/*
 * kinfer-cli — generate text with a model, or chat with it.
 *
 *   kinfer-cli -m model.gguf -p "The capital of France is" -n 64 --temp 0
 *   kinfer-cli -m model.gguf -i                 (chat: one user turn per line)
 *
 * Flags are llama.cpp's (llama-completion / llama-cli) where they mean the
 * same thing; run with -h for the list.  Text goes to stdout as it is
 * generated; loading progress, information and timings go to stderr.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "kinfer.h"
#include "../common/args.h"
#include "../common/fim.h"
#include "../common/gen.h"
#include "../common/json_schema.h"

/* ------------------------------------------------------------ arguments */

typedef struct cli_args {
    const char *model_path;
    const char *prompt;         /* -p, or the text of -f */
    char *prompt_file_text;
    const char *system_prompt;  /* chat mode */
    const char *fim_prefix, *fim_suffix;  /* fill-in-the-middle mode (either set) */
    char *fim_file_text[2];
    const char *chat_template;  /* a family name or template text */
    int32_t n_predict;          /* -1 = until end of generation or a full context */
    int32_t n_keep;             /* tokens of the prompt a context shift keeps; -1 = all */
    bool chat, context_shift, ignore_eos, display_prompt, verbose_prompt;
    kinfer_context_params cparams;
    kinfer_sampler_params sparams;
    int64_t seed;               /* -1 = random */
    char *grammar;              /* --grammar / --grammar-file / --json-schema, as GBNF (owned) */
} cli_args;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kinfer-cli -m MODEL [options]\n"
            "  -m, --model FILE            GGUF model\n"
            "  -p, --prompt TEXT           prompt (in chat mode: the system prompt)\n"
            "  -f, --file FILE             read the prompt from a file\n"
            "  -sys, --system-prompt TEXT  system prompt for chat mode\n"
            "  --fim-prefix TEXT           fill in the middle: the code before the hole (then -p\n"
            "                              starts the middle); the prompt is built as llama-server's\n"
            "                              /infill builds it, the prefix cut to 3/4 of -b tokens\n"
            "  --fim-suffix TEXT           the code after the hole\n"
            "  --fim-prefix-file FILE, --fim-suffix-file FILE   the same, read from files\n"
            "  -i, -cnv, --chat            interactive chat, one user message per line of stdin\n"
            "  --chat-template NAME        chat template family or text (chatml, llama3, gemma, ...)\n"
            "  -n, --n-predict N           tokens to generate (default -1: until end of text)\n"
            "  -c, --ctx-size N            KV cache size (default 4096, 0 = the model's)\n"
            "  -b, --batch-size N          tokens per decode step (default 512)\n"
            "  -t, --threads N             threads (default: online cores)\n"
            "  -s, --seed N                sampling seed (default -1: random)\n"
            "  --temp T                    temperature, 0 = greedy (default 0.8)\n"
            "  --top-k N                   (default 40, 0 = off)\n"
            "  --top-p P                   (default 0.95, 1 = off)\n"
            "  --min-p P                   (default 0.05, 0 = off)\n"
            "  --repeat-penalty X          (default 1.0 = off)\n"
            "  --repeat-last-n N           history the penalties see (default 64, -1 = context)\n"
            "  --presence-penalty X        (default 0)\n"
            "  --frequency-penalty X       (default 0)\n"
            "  -ngl, --n-gpu-layers N      layers on the GPU (-1 = as many as fit, 0 = none)\n"
            "  -ctk, --cache-type-k T      KV key type: f16 (default), q8_0, f32\n"
            "  -ctv, --cache-type-v T      KV value type\n"
            "  -fa, --flash-attn on|off|auto  flash attention (default auto: on, as llama.cpp)\n"
            "  --context-shift             when the context is full, drop the older half and go on\n"
            "  --keep N                    prompt tokens a context shift keeps (-1 = all)\n"
            "  --ignore-eos                do not stop at end-of-generation tokens\n"
            "  --grammar GBNF              constrain the output to a GBNF grammar (llama.cpp's)\n"
            "  --grammar-file FILE         the same, read from a file\n"
            "  -j, --json-schema SCHEMA    constrain the output to JSON of a JSON Schema ({} = any\n"
            "                              JSON value); -jf, --json-schema-file FILE reads it\n"
            "  --no-display-prompt         do not echo the prompt\n"
            "  --verbose-prompt            print the prompt's tokens on stderr\n");
}

static char *read_text_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) args_die("%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) args_die("out of memory");
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) args_die("out of memory");
        }
    }
    if (ferror(f)) args_die("%s: read error", path);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* A JSON Schema's grammar; a schema that does not convert ends the program. */
static char *schema_grammar(const char *schema)
{
    char err[512];
    char *g = json_schema_text_to_gbnf(schema, strlen(schema), err, sizeof err);
    if (!g) args_die("--json-schema: %s", err);
    return g;
}

static void set_grammar(cli_args *a, char *gbnf)
{
    if (!gbnf) args_die("out of memory");
    if (a->grammar) args_die("give one of --grammar, --grammar-file, --json-schema");
    a->grammar = gbnf;
}

static void parse_args(int argc, char **argv, cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->n_predict = -1;
    a->display_prompt = true;
    a->seed = -1;
    a->cparams = kinfer_context_default_params();
    a->cparams.n_ctx = 4096;
    a->sparams = kinfer_sampler_default_params();
    int repeat_last_n = a->sparams.penalty_last_n;

    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
#define IS(x) (!strcmp(f, x))
        if (IS("-h") || IS("--help")) {
            usage(stdout);
            exit(0);
        }
        if (IS("-i") || IS("-cnv") || IS("--chat") || IS("--interactive") || IS("--conversation")) {
            a->chat = true;
            continue;
        }
        if (IS("--context-shift")) { a->context_shift = true; continue; }
        if (IS("--no-context-shift")) { a->context_shift = false; continue; }
        if (IS("--ignore-eos")) { a->ignore_eos = true; continue; }
        if (IS("--no-display-prompt")) { a->display_prompt = false; continue; }
        if (IS("--verbose-prompt")) { a->verbose_prompt = true; continue; }
        static const char *const value_flags[] = {
            "-m", "--model", "-p", "--prompt", "-f", "--file", "-sys", "--system-prompt",
            "--chat-template", "-n", "--n-predict", "-c", "--ctx-size", "-b", "--batch-size",
            "-t", "--threads", "-s", "--seed", "--temp", "--top-k", "--top-p", "--min-p",
            "--repeat-penalty", "--repeat-last-n", "--presence-penalty", "--frequency-penalty",
            "-ngl", "--n-gpu-layers", "--gpu-layers", "-ctk", "--ctk", "--cache-type-k", "-ctv",
            "--ctv", "--cache-type-v", "--keep", "--fim-prefix", "--fim-suffix", "--fim-prefix-file",
            "--fim-suffix-file", "-fa", "--flash-attn", "--grammar", "--grammar-file", "-j", "--json-schema",
            "-jf", "--json-schema-file",
        };
        bool known = false;
        for (size_t k = 0; k < sizeof value_flags / sizeof *value_flags; k++)
            known |= IS(value_flags[k]);
        if (!known) args_die("unknown option %s (see -h)", f);
        if (i + 1 >= argc) args_die("%s needs a value (see -h)", f);
        const char *v = argv[++i];
        if (IS("-m") || IS("--model")) a->model_path = v;
        else if (IS("-p") || IS("--prompt")) a->prompt = v;
        else if (IS("-f") || IS("--file")) {
            free(a->prompt_file_text);
            a->prompt = a->prompt_file_text = read_text_file(v);
        } else if (IS("-sys") || IS("--system-prompt")) a->system_prompt = v;
        else if (IS("--chat-template")) a->chat_template = v;
        else if (IS("-n") || IS("--n-predict")) a->n_predict = (int32_t)args_int(f, v, -1, INT32_MAX);
        else if (IS("-c") || IS("--ctx-size")) a->cparams.n_ctx = (uint32_t)args_int(f, v, 0, INT32_MAX);
        else if (IS("-b") || IS("--batch-size")) a->cparams.n_batch = (uint32_t)args_int(f, v, 1, INT32_MAX);
        else if (IS("-t") || IS("--threads")) a->cparams.n_threads = (int32_t)args_int(f, v, -1, 4096);
        else if (IS("-s") || IS("--seed")) a->seed = args_int(f, v, -1, INT64_MAX);
        else if (IS("--temp")) a->sparams.temperature = args_float(f, v);
        else if (IS("--top-k")) a->sparams.top_k = (int32_t)args_int(f, v, 0, INT32_MAX);
        else if (IS("--top-p")) a->sparams.top_p = args_float(f, v);
        else if (IS("--min-p")) a->sparams.min_p = args_float(f, v);
        else if (IS("--repeat-penalty")) a->sparams.repeat_penalty = args_float(f, v);
        else if (IS("--repeat-last-n")) repeat_last_n = (int)args_int(f, v, -1, INT32_MAX);
        else if (IS("--presence-penalty")) a->sparams.presence_penalty = args_float(f, v);
        else if (IS("--frequency-penalty")) a->sparams.frequency_penalty = args_float(f, v);
        else if (IS("-ngl") || IS("--n-gpu-layers") || IS("--gpu-layers"))
            a->cparams.n_gpu_layers = (int32_t)args_int(f, v, -1, INT32_MAX);
        else if (IS("-ctk") || IS("--ctk") || IS("--cache-type-k")) a->cparams.type_k = args_kv_type(f, v);
        else if (IS("-ctv") || IS("--ctv") || IS("--cache-type-v")) a->cparams.type_v = args_kv_type(f, v);
        else if (IS("-fa") || IS("--flash-attn")) a->cparams.flash_attn = args_flash_attn(f, v);
        else if (IS("--keep")) a->n_keep = (int32_t)args_int(f, v, -1, INT32_MAX);
        else if (IS("--fim-prefix")) a->fim_prefix = v;
        else if (IS("--fim-suffix")) a->fim_suffix = v;
        else if (IS("--fim-prefix-file")) {
            free(a->fim_file_text[0]);
            a->fim_prefix = a->fim_file_text[0] = read_text_file(v);
        } else if (IS("--fim-suffix-file")) {
            free(a->fim_file_text[1]);
            a->fim_suffix = a->fim_file_text[1] = read_text_file(v);
        }
        else if (IS("--grammar")) set_grammar(a, strdup(v));
        else if (IS("--grammar-file")) set_grammar(a, read_text_file(v));
        else if (IS("-j") || IS("--json-schema")) set_grammar(a, schema_grammar(v));
        else if (IS("-jf") || IS("--json-schema-file")) {
            char *text = read_text_file(v);
            set_grammar(a, schema_grammar(text));
            free(text);
        }
        else args_die("unknown option %s (see -h)", f);
#undef IS
    }
    if (!a->model_path) {
        usage(stderr);
        args_die("no model given (-m)");
    }
    if (a->cparams.n_threads < 0) a->cparams.n_threads = 0;
    /* -1 = the whole context, resolved once the context exists */
    a->sparams.penalty_last_n = repeat_last_n;
}

/* -------------------------------------------------------------- session */

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    if (g_interrupted) _exit(130);   /* a second Ctrl-C leaves at once */
    g_interrupted = 1;
}

static bool abort_on_interrupt(void *user_data)
{
    (void)user_data;
    return g_interrupted != 0;
}

typedef struct session {
    kinfer_model *model;
    kinfer_context *ctx;
    gen_seq gen;              /* sequence 0: sampler, detokenizer, positions, timings */
    const cli_args *args;
    int32_t n_ctx;
} session;

static void ctx_die(const session *s, kinfer_status st, const char *what)
{
    args_die("%s: %s: %s", what, kinfer_status_str(st), kinfer_context_errmsg(s->ctx));
}

/* Decode n tokens after what is in the cache (examples/common's gen_eval,
 * prompt chunks of n_batch).  Returns KINFER_OK, or KINFER_E_CONTEXT_FULL
 * when they do not fit (and shifting is off or cannot help), or
 * KINFER_E_ABORTED on Ctrl-C; other failures end the program. */
static kinfer_status eval(session *s, const kinfer_token *tokens, int32_t n, bool is_prompt)
{
    kinfer_status st = gen_eval(s->ctx, &s->gen, tokens, n, (int32_t)s->args->cparams.n_batch,
                                s->n_ctx, s->args->context_shift, is_prompt);
    if (st == KINFER_OK || st == KINFER_E_ABORTED || st == KINFER_E_CONTEXT_FULL) return st;
    ctx_die(s, st, "decode");
    return st;
}

/* Write streamed text to stdout and, when collect is given, append it there. */
static void emit(textbuf *piece, textbuf *collect)
{
    if (piece->n == 0) return;
    fwrite(piece->p, 1, piece->n, stdout);
    fflush(stdout);
    if (collect && !textbuf_append(collect, piece->p, piece->n)) args_die("out of memory");
    textbuf_clear(piece);
}

/* Sample and decode until end of generation, n_max tokens (-1 = no limit),
 * a full context, or Ctrl-C.  The cache must hold the prompt, with the
 * logits of its last token.  Returns why it stopped, for the caller. */
typedef enum stop_reason { STOP_EOG, STOP_LIMIT, STOP_FULL, STOP_INTERRUPT } stop_reason;

static stop_reason generate(session *s, int32_t n_max, textbuf *collect)
{
    stop_reason why = STOP_LIMIT;
    textbuf piece = {0};
    s->gen.n_predict = n_max;
    s->gen.n_generated = 0;
    for (;;) {
        if (g_interrupted) {
            why = STOP_INTERRUPT;
            break;
        }
        const float *logits = kinfer_get_logits(s->ctx, s->gen.logits_index);
        if (!logits) args_die("no logits after decode");
        kinfer_token t = 0;
        gen_status gs = gen_seq_next(&s->gen, logits, &t, &piece);
        emit(&piece, collect);
        if (gs == GEN_ERROR) args_die("sampling failed");
        if (gs == GEN_EOG) why = STOP_EOG;
        if (gs != GEN_CONTINUE) break;
        kinfer_status st = eval(s, &t, 1, false);
        if (st == KINFER_E_CONTEXT_FULL) {
            why = STOP_FULL;
            break;
        }
        if (st == KINFER_E_ABORTED) {
            why = STOP_INTERRUPT;
            break;
        }
    }
    gen_seq_finish(&s->gen, &piece);
    emit(&piece, collect);
    textbuf_free(&piece);
    return why;
}

/* Tokenize text (control-token text parsed: templates and prompts are the
 * user's own); *n gets the count.  The caller frees. */
static kinfer_token *tokenize(const session *s, const char *text, bool add_special, int32_t *n)
{
    kinfer_error err = {0};
    kinfer_token *toks = gen_tokenize(s->model, text, strlen(text), add_special, true, n, &err);
    if (!toks) args_die("tokenize: %s: %s", kinfer_status_str(err.status), err.message);
    return toks;
}

static void print_tokens(const session *s, const kinfer_token *toks, int32_t n)
{
    fprintf(stderr, "prompt: %d tokens\n", n);
    for (int32_t i = 0; i < n; i++) {
        char piece[128];
        int32_t len = kinfer_token_to_piece(s->model, toks[i], piece, sizeof piece - 1, true);
        if (len < 0) len = 0;
        piece[len] = '\0';
        fprintf(stderr, "%6d -> '%s'\n", toks[i], piece);
    }
}

/* -------------------------------------------------------------- modes */

static void run_completion(session *s)
{
    const cli_args *a = s->args;
    const char *prompt = a->prompt ? a->prompt : "";
    bool fim = a->fim_prefix || a->fim_suffix;
    int32_t n = 0;
    kinfer_token *toks;
    if (fim) {
        fim_input in = {.prefix = a->fim_prefix, .suffix = a->fim_suffix, .prompt = a->prompt};
        kinfer_error err = {0};
        toks = fim_prompt(s->model, &in, (int32_t)a->cparams.n_batch, s->n_ctx, a->n_predict, &n, &err);
        if (!toks) args_die("fill in the middle: %s", err.message);
    } else {
        toks = tokenize(s, prompt, true, &n);
    }
    if (n == 0) args_die("the prompt is empty and the model adds no BOS token");
    if (a->verbose_prompt) print_tokens(s, toks, n);
    if (n > s->n_ctx - 4) args_die("the prompt (%d tokens) does not fit the context (%d)", n, s->n_ctx);

    /* what a context shift keeps: --keep N prompt tokens plus the BOS */
    int32_t keep = a->n_keep;
    bool bos = kinfer_vocab_add_bos(s->model);
    if (keep < 0 || keep > n) keep = n;
    else keep += bos ? 1 : 0;
    if (keep > n) keep = n;
    s->gen.n_keep = keep;

    gen_seq_accept_prompt(&s->gen, toks, n);
    if (a->display_prompt && !fim) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    kinfer_status st = eval(s, toks, n, true);
    free(toks);
    if (st == KINFER_E_ABORTED) {
        fprintf(stderr, "\n[interrupted]\n");
        return;
    }
    if (st != KINFER_OK) args_die("the prompt does not fit the context");

    stop_reason why = generate(s, a->n_predict, NULL);
    fputc('\n', stdout);
    fflush(stdout);
    if (why == STOP_EOG) fprintf(stderr, "[end of text]\n");
    if (why == STOP_FULL) fprintf(stderr, "[context full (%d tokens); --context-shift goes on]\n", s->n_ctx);
    if (why == STOP_INTERRUPT) fprintf(stderr, "[interrupted]\n");
}

typedef struct chat_history {
    kinfer_chat_message *msgs;
    size_t n;
} chat_history;

static void chat_push(chat_history *h, const char *role, const char *content)
{
    h->msgs = realloc(h->msgs, (h->n + 1) * sizeof *h->msgs);
    if (!h->msgs) args_die("out of memory");
    h->msgs[h->n].role = strdup(role);
    h->msgs[h->n].content = strdup(content);
    if (!h->msgs[h->n].role || !h->msgs[h->n].content) args_die("out of memory");
    h->n++;
}

/* The conversation rendered with the template; the caller frees. */
static char *chat_render(const session *s, const char *tmpl, const chat_history *h, bool add_gen)
{
    kinfer_error err = {0};
    int64_t need = kinfer_chat_apply_template(s->model, tmpl, h->msgs, h->n, add_gen, NULL, 0, &err);
    if (need == 0 && err.status != KINFER_OK)
        args_die("chat template: %s: %s", kinfer_status_str(err.status), err.message);
    if (need < 0) need = -need;
    char *buf = malloc((size_t)need + 1);
    if (!buf) args_die("out of memory");
    int64_t got = kinfer_chat_apply_template(s->model, tmpl, h->msgs, h->n, add_gen, buf, need + 1, &err);
    if (got < 0 || (got == 0 && err.status != KINFER_OK))
        args_die("chat template: %s: %s", kinfer_status_str(err.status), err.message);
    buf[got] = '\0';
    return buf;
}

/* The template to use: --chat-template, else the model's, else one known
 * from the architecture (Gemma files ship without one), else chatml. */
static const char *chat_template_for(const session *s)
{
    if (s->args->chat_template) return s->args->chat_template;
    if (kinfer_model_chat_template(s->model)) return NULL;
    const char *arch = NULL;
    if (kinfer_meta_get_str(s->model, "general.architecture", &arch) == KINFER_OK &&
        !strncmp(arch, "gemma", 5))
        return "gemma";
    return "chatml";
}

static void run_chat(session *s)
{
    const cli_args *a = s->args;
    const char *tmpl = chat_template_for(s);
    const char *family = tmpl ? kinfer_chat_template_family(tmpl)
                              : kinfer_chat_template_family(kinfer_model_chat_template(s->model));
    fprintf(stderr, "chat template: %s; one message per line, Ctrl-D or /exit to quit\n",
            family ? family : "(unrecognized)");

    chat_history h = {0};
    const char *sys = a->system_prompt ? a->system_prompt : a->prompt;
    if (sys && *sys) chat_push(&h, "system", sys);
    s->gen.n_keep = 0;

    /* fed: the text now in the KV cache (the last rendering and the reply
     * generated after it); valid while no context shift has cut into it */
    textbuf fed = {0};
    int64_t fed_shifts = 0;
    char *line = NULL;
    size_t line_cap = 0;
    for (;;) {
        fputs("\n> ", stdout);
        fflush(stdout);
        g_interrupted = 0;
        ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0) break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        chat_push(&h, "user", line);

        /* Feed only what the cache lacks: a new rendering usually extends
         * the text fed so far (closing the last reply, opening the new
         * turn).  When it does not, or a shift cut into the cache, start
         * the cache over with the whole conversation. */
        char *rendered = chat_render(s, tmpl, &h, true);
        const char *delta = rendered;
        if (fed.n && fed_shifts == s->gen.n_shifts && !strncmp(rendered, fed.p, fed.n)) {
            delta = rendered + fed.n;
        } else if (s->gen.n_past > 0) {
            kinfer_kv_clear(s->ctx);
            s->gen.n_past = 0;
        }
        int32_t n = 0;
        kinfer_token *toks = tokenize(s, delta, s->gen.n_past == 0, &n);
        if (a->verbose_prompt) print_tokens(s, toks, n);
        gen_seq_accept_prompt(&s->gen, toks, n);
        kinfer_status st = n ? eval(s, toks, n, true) : KINFER_OK;
        free(toks);
        if (st != KINFER_OK) {
            fprintf(stderr, st == KINFER_E_ABORTED ? "[interrupted]\n"
                                                   : "[context full: the conversation ends]\n");
            free(rendered);
            break;
        }

        textbuf reply = {0};
        if (s->gen.grammar) kinfer_grammar_reset(s->gen.grammar);   /* each reply follows it anew */
        stop_reason why = generate(s, a->n_predict, &reply);
        fputc('\n', stdout);
        if (why == STOP_FULL) fprintf(stderr, "[context full: the conversation ends]\n");
        if (why == STOP_INTERRUPT) fprintf(stderr, "[interrupted]\n");
        textbuf_clear(&fed);
        if (!textbuf_append_str(&fed, rendered) || !textbuf_append(&fed, textbuf_str(&reply), reply.n))
            args_die("out of memory");
        fed_shifts = s->gen.n_shifts;
        chat_push(&h, "assistant", textbuf_str(&reply));
        textbuf_free(&reply);
        free(rendered);
        if (why == STOP_FULL) break;
    }
    fputc('\n', stdout);
    fflush(stdout);
    free(line);
    textbuf_free(&fed);
    for (size_t i = 0; i < h.n; i++) {
        free((char *)h.msgs[i].role);
        free((char *)h.msgs[i].content);
    }
    free(h.msgs);
}

/* ----------------------------------------------------------------- main */

static bool load_progress(float progress, void *user_data)
{
    int *last = user_data;
    int pct = (int)(progress * 100.0f + 0.5f);
    if (pct == *last) return true;
    *last = pct;
    int bar = pct * 30 / 100;
    fprintf(stderr, "\rloading [%.*s%*s] %3d%%", bar, "##############################", 30 - bar,
            "", pct);
    if (pct >= 100) fputc('\n', stderr);
    return g_interrupted == 0;
}

static void print_rate(const char *what, int64_t n, uint64_t ns)
{
    double ms = (double)ns / 1e6;
    fprintf(stderr, "kinfer: %-10s %6lld tokens in %9.2f ms = %8.2f tokens/s\n", what,
            (long long)n, ms, ms > 0 ? (double)n * 1000.0 / ms : 0.0);
}

/* Where the layers go (llama.cpp's order: the last ones on the GPU). */
static void print_placement(const kinfer_model *model, const kinfer_estimate *e)
{
    const int32_t n_layer = kinfer_model_n_layer(model);
    const int32_t on_gpu = e->n_gpu_layers < n_layer ? e->n_gpu_layers : n_layer;
    const double mib = 1024.0 * 1024.0;
    if (on_gpu == 0)
        fprintf(stderr, "kinfer: layers 0-%d and the output on the CPU\n", n_layer - 1);
    else if (on_gpu == n_layer)
        fprintf(stderr, "kinfer: layers 0-%d on the GPU, the output on the %s\n", n_layer - 1,
                e->n_gpu_layers > n_layer ? "GPU" : "CPU");
    else
        fprintf(stderr, "kinfer: layers 0-%d on the CPU, %d-%d on the GPU, the output on the CPU\n",
                n_layer - on_gpu - 1, n_layer - on_gpu, n_layer - 1);
    fprintf(stderr, "kinfer: memory: host %.1f MiB (KV cache %.1f), GPU %.1f MiB (KV cache %.1f)\n",
            e->host_bytes / mib, e->kv_host_bytes / mib, e->device_bytes / mib, e->kv_device_bytes / mib);
}

int main(int argc, char **argv)
{
    cli_args a;
    args_program("kinfer-cli");
    parse_args(argc, argv, &a);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;   /* no SA_RESTART: Ctrl-C interrupts getline */
    sigaction(SIGINT, &sa, NULL);

    session s;
    memset(&s, 0, sizeof s);
    s.args = &a;

    /* model */
    int last_pct = -1;
    kinfer_model_params mp = kinfer_model_default_params();
    mp.progress = load_progress;
    mp.progress_user_data = &last_pct;
    uint64_t t0 = gen_now_ns();
    kinfer_status st = kinfer_model_load(a.model_path, &mp, &s.model);
    if (last_pct >= 0 && last_pct < 100) fputc('\n', stderr);
    if (st != KINFER_OK)
        args_die("%s: %s: %s", a.model_path, kinfer_status_str(st), kinfer_model_errmsg(s.model));
    uint64_t t_load = gen_now_ns() - t0;
    if (kinfer_vocab_n_tokens(s.model) == 0) args_die("%s: the file has no tokenizer", a.model_path);

    /* context */
    a.cparams.abort_callback = abort_on_interrupt;
    if (a.cparams.n_ctx > 0 && kinfer_model_n_ctx_train(s.model) > 0 &&
        a.cparams.n_ctx > (uint32_t)kinfer_model_n_ctx_train(s.model))
        a.cparams.n_ctx = (uint32_t)kinfer_model_n_ctx_train(s.model);
    kinfer_estimate est;
    st = kinfer_model_estimate(s.model, &a.cparams, &est);
    if (st != KINFER_OK) args_die("context: %s: %s", kinfer_status_str(st), est.errmsg);
    print_placement(s.model, &est);
    int upload_pct = -1; /* the weights' upload to the GPU, with the same bar */
    if (est.n_gpu_layers > 0) {
        a.cparams.progress = load_progress;
        a.cparams.progress_user_data = &upload_pct;
    }
    st = kinfer_context_new(s.model, &a.cparams, &s.ctx);
    if (upload_pct >= 0 && upload_pct < 100) fputc('\n', stderr);
    if (st != KINFER_OK) args_die("context: %s: %s", kinfer_status_str(st), kinfer_context_errmsg(s.ctx));
    s.n_ctx = (int32_t)kinfer_context_n_ctx(s.ctx);

    /* sampler */
    if (a.sparams.penalty_last_n < 0) a.sparams.penalty_last_n = s.n_ctx;
    if (a.seed < 0) a.seed = (int64_t)((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16)) & INT32_MAX;
    a.sparams.seed = (uint64_t)a.seed;
    gen_params gp = gen_default_params();
    gp.sampling = a.sparams;
    gp.n_predict = a.n_predict;
    gp.ignore_eos = a.ignore_eos;
    gp.grammar = a.grammar;
    st = gen_seq_init(&s.gen, s.model, 0, &gp);
    if (st != KINFER_OK && s.gen.error[0]) args_die("%s", s.gen.error);
    if (st != KINFER_OK) args_die("sampler: %s: bad sampling parameters", kinfer_status_str(st));

    char desc[256];
    if (kinfer_model_desc(s.model, desc, sizeof desc) < 0) snprintf(desc, sizeof desc, "?");
    fprintf(stderr, "kinfer %s: %s; n_ctx %d, seed %lld, temp %.2f, top-k %d, top-p %.2f, min-p %.2f\n",
            kinfer_version(), desc, s.n_ctx, (long long)a.seed, a.sparams.temperature,
            a.sparams.top_k, a.sparams.top_p, a.sparams.min_p);

    if (a.chat)
        run_chat(&s);
    else
        run_completion(&s);

    fprintf(stderr, "kinfer: load       %9.2f ms\n", (double)t_load / 1e6);
    print_rate("prompt", s.gen.n_prompt_eval, s.gen.t_prompt_ns);
    print_rate("generation", s.gen.n_gen_eval, s.gen.t_gen_ns);
    fprintf(stderr, "kinfer: sampling   %9.2f ms%s\n", (double)s.gen.t_sample_ns / 1e6,
            s.gen.n_shifts ? " (context shifted)" : "");

    gen_seq_free(&s.gen);
    kinfer_context_free(s.ctx);
    kinfer_model_free(s.model);
    free(a.prompt_file_text);
    free(a.grammar);
    free(a.fim_file_text[0]);
    free(a.fim_file_text[1]);
    return 0;
}
