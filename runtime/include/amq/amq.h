/* amq C API: load a model (.amq or float .safetensors), run LSTM/GRU steps.
 *
 *   amq_model *m;
 *   if (amq_model_load("model.amq", &m) != AMQ_OK) {
 *       fprintf(stderr, "%s\n", amq_last_error());
 *       return 1;
 *   }
 *   amq_session *s;
 *   amq_session_new(m, 1, &s);
 *   amq_session_step(s, x, h);      // x [batch][input_size] -> h [batch][h_size]
 *   amq_session_free(s);
 *   amq_model_free(m);
 *
 * Every function that can fail returns an amq_status; on failure
 * amq_last_error() holds a one-line message (per thread) naming what was wrong.
 * No function aborts or lets a C++ exception escape. A model may be shared by
 * sessions in several threads; a session is used by one thread at a time. */
#ifndef AMQ_AMQ_H
#define AMQ_AMQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum amq_status {
    AMQ_OK = 0,
    AMQ_ERR_ARGUMENT = 1, /* a null pointer, a size or an id out of range */
    AMQ_ERR_IO = 2,       /* the file cannot be read */
    AMQ_ERR_FORMAT = 3,   /* the file breaks the model format */
    AMQ_ERR_RUNTIME = 4   /* any other failure (e.g. out of memory) */
} amq_status;

typedef struct amq_model amq_model;
typedef struct amq_session amq_session;

typedef struct amq_model_info {
    int arch; /* 0 = LSTM, 1 = GRU */
    int layers;
    size_t input_size, hidden_size, vocab_size; /* vocab_size 0: not a language model */
    int k_w, k_a;                               /* 0 for a float model */
    int bidirectional;                          /* 1: two directions per layer */
    size_t proj_size;                           /* LSTM projection, 0 = none */
    size_t h_size;      /* width of h per direction: proj_size, or hidden_size */
    size_t output_size; /* width of an output step: (bidirectional ? 2 : 1) * h_size */
} amq_model_info;

/* The message of the last failure in this thread ("" if none). */
const char *amq_last_error(void);

/* Threads of the kernels' thread pool (n >= 1). */
amq_status amq_set_num_threads(int n);

amq_status amq_model_load(const char *path, amq_model **out);
amq_status amq_model_get_info(const amq_model *model, amq_model_info *out);
void amq_model_free(amq_model *model); /* null is allowed */

amq_status amq_session_new(const amq_model *model, size_t batch, amq_session **out);
void amq_session_free(amq_session *session); /* null is allowed */
amq_status amq_session_reset(amq_session *session);
/* The state in PyTorch's layout: h [layers * D][batch][h_size], c
 * [layers * D][batch][hidden_size], D = 2 when bidirectional else 1, row
 * l * D + d = direction d (1 = reverse) of layer l. set_state: null h0 / c0 mean
 * zeros, c0 must be null for a GRU; get_state: either may be null, c_n must be
 * null for a GRU. */
amq_status amq_session_set_state(amq_session *session, const float *h0, const float *c0);
amq_status amq_session_get_state(const amq_session *session, float *h_n, float *c_n);
/* x [batch][input_size] -> h_out [batch][h_size] (h_out may be null). A
 * bidirectional model cannot step (AMQ_ERR_ARGUMENT): use amq_session_run. */
amq_status amq_session_step(amq_session *session, const float *x, float *h_out);
/* Language models: tokens [batch] -> h_out [batch][h_size] and
 * logits_out [batch][vocab_size] (either may be null). */
amq_status amq_session_step_tokens(amq_session *session, const int64_t *tokens, float *h_out,
                                   float *logits_out);
/* T steps: x [T][batch][input_size] -> out [T][batch][output_size] (out may be
 * null), from the session's state, leaving the final state in it. */
amq_status amq_session_run(amq_session *session, const float *x, size_t steps, float *out);
/* The same with lengths [batch] (each 0..steps; null = all steps), as PyTorch's
 * pack_padded_sequence: outputs past a sequence's length are 0 and its final
 * state is the one after its last valid step. */
amq_status amq_session_run_lengths(amq_session *session, const float *x, size_t steps,
                                   const int64_t *lengths, float *out);

#ifdef __cplusplus
}
#endif

#endif /* AMQ_AMQ_H */
