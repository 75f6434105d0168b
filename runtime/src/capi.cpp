// The C API (amq/amq.h) over the C++ runner: exceptions become status codes and
// a per-thread message.
#include <algorithm>
#include <new>
#include <string>

#include "amq/amq.h"
#include "amq/rnn.h"

struct amq_model {
    std::shared_ptr<const amq::Model> model;
};
struct amq_session {
    amq::Session session;
};

namespace {

thread_local std::string last_error;

amq_status fail(amq_status status, const std::string &message) {
    last_error = message;
    return status;
}

// Runs f, mapping every exception to a status and a message.
template <class F>
amq_status guarded(F &&f) {
    try {
        f();
        last_error.clear();
        return AMQ_OK;
    } catch (const amq::st::FormatError &e) {
        return fail(AMQ_ERR_FORMAT, e.what());
    } catch (const amq::Error &e) {
        return fail(AMQ_ERR_ARGUMENT, e.what());
    } catch (const std::invalid_argument &e) {
        return fail(AMQ_ERR_ARGUMENT, e.what());
    } catch (const std::bad_alloc &) {
        return fail(AMQ_ERR_RUNTIME, "out of memory");
    } catch (const std::runtime_error &e) {
        return fail(AMQ_ERR_IO, e.what());
    } catch (const std::exception &e) {
        return fail(AMQ_ERR_RUNTIME, e.what());
    } catch (...) {
        return fail(AMQ_ERR_RUNTIME, "unknown error");
    }
}

#define AMQ_REQUIRE(ptr) \
    if (!(ptr)) return fail(AMQ_ERR_ARGUMENT, std::string(__func__) + ": " #ptr " is null")

}  // namespace

extern "C" {

const char *amq_last_error(void) { return last_error.c_str(); }

amq_status amq_set_num_threads(int n) {
    if (n < 1)
        return fail(AMQ_ERR_ARGUMENT,
                    "amq_set_num_threads: n = " + std::to_string(n) + ", expected at least 1");
    return guarded([&] { amq::set_num_threads(n); });
}

amq_status amq_model_load(const char *path, amq_model **out) {
    AMQ_REQUIRE(path);
    AMQ_REQUIRE(out);
    *out = nullptr;
    return guarded([&] { *out = new amq_model{amq::Model::load(path)}; });
}

amq_status amq_model_get_info(const amq_model *model, amq_model_info *out) {
    AMQ_REQUIRE(model);
    AMQ_REQUIRE(out);
    const amq::RnnShape &s = model->model->shape();
    *out = amq_model_info{s.arch == amq::Arch::lstm ? 0 : 1,
                          s.layers,
                          s.input_size,
                          s.hidden_size,
                          s.vocab_size,
                          model->model->k_w(),
                          model->model->k_a(),
                          s.bidirectional ? 1 : 0,
                          s.proj_size,
                          s.h_size(),
                          s.output_size()};
    return AMQ_OK;
}

void amq_model_free(amq_model *model) { delete model; }

amq_status amq_session_new(const amq_model *model, size_t batch, amq_session **out) {
    AMQ_REQUIRE(model);
    AMQ_REQUIRE(out);
    *out = nullptr;
    return guarded([&] { *out = new amq_session{amq::Session(model->model, batch)}; });
}

void amq_session_free(amq_session *session) { delete session; }

amq_status amq_session_reset(amq_session *session) {
    AMQ_REQUIRE(session);
    return guarded([&] { session->session.reset(); });
}

amq_status amq_session_step(amq_session *session, const float *x, float *h_out) {
    AMQ_REQUIRE(session);
    AMQ_REQUIRE(x);
    return guarded([&] {
        const float *h = session->session.step(x);
        const size_t n = session->session.batch() * session->session.model().shape().h_size();
        if (h_out) std::copy(h, h + n, h_out);
    });
}

amq_status amq_session_step_tokens(amq_session *session, const int64_t *tokens, float *h_out,
                                   float *logits_out) {
    AMQ_REQUIRE(session);
    AMQ_REQUIRE(tokens);
    return guarded([&] {
        amq::Session &s = session->session;
        const float *h = s.step_tokens(tokens);
        const amq::RnnShape &shape = s.model().shape();
        if (h_out) std::copy(h, h + s.batch() * shape.h_size(), h_out);
        if (logits_out)
            std::copy(s.logits(), s.logits() + s.batch() * shape.vocab_size, logits_out);
    });
}

amq_status amq_session_set_state(amq_session *session, const float *h0, const float *c0) {
    AMQ_REQUIRE(session);
    return guarded([&] { session->session.set_state(h0, c0); });
}

amq_status amq_session_get_state(const amq_session *session, float *h_n, float *c_n) {
    AMQ_REQUIRE(session);
    return guarded([&] { session->session.get_state(h_n, c_n); });
}

amq_status amq_session_run(amq_session *session, const float *x, size_t steps, float *out) {
    return amq_session_run_lengths(session, x, steps, nullptr, out);
}

amq_status amq_session_run_lengths(amq_session *session, const float *x, size_t steps,
                                   const int64_t *lengths, float *out) {
    AMQ_REQUIRE(session);
    AMQ_REQUIRE(x);
    return guarded([&] { session->session.run(x, steps, out, lengths); });
}

}  // extern "C"
