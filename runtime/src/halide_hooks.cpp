// Hooks into the Halide runtime: errors become amq::Error instead of abort(),
// AMQ_ISA caps the variant the multi-target kernels pick, and the parallel
// loops run on amq's pool (amq/thread_pool.h).
#include "halide_hooks.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "HalideRuntime.h"
#include "amq/thread_pool.h"

namespace amq::detail {
namespace {

thread_local std::string g_last_error;

void on_halide_error(void *, const char *msg) {
    g_last_error = msg ? msg : "unknown Halide runtime error";
    while (!g_last_error.empty() && (g_last_error.back() == '\n' || g_last_error.back() == ' '))
        g_last_error.pop_back();
}

bool has(const uint64_t *features, int count, halide_target_feature_t f) {
    int word = int(f) / 64;
    return word < count && ((features[word] >> (int(f) % 64)) & 1);
}

bool needs_avx512(const uint64_t *features, int count) {
    for (auto f : {halide_target_feature_avx512, halide_target_feature_avx512_knl,
                   halide_target_feature_avx512_skylake, halide_target_feature_avx512_cannonlake,
                   halide_target_feature_avx512_sapphirerapids})
        if (has(features, count, f)) return true;
    return false;
}

bool needs_avx(const uint64_t *features, int count) {
    for (auto f : {halide_target_feature_avx, halide_target_feature_avx2, halide_target_feature_fma,
                   halide_target_feature_f16c})
        if (has(features, count, f)) return true;
    return needs_avx512(features, count);
}

Isa g_cap = Isa::avx512;

// Called by each multi-target wrapper (once per kernel, the choice is cached)
// for its variants in order, most capable first.
int can_use(int count, const uint64_t *features) {
    if (!halide_default_can_use_target_features(count, features)) return 0;
    if (g_cap < Isa::avx512 && needs_avx512(features, count)) return 0;
    if (g_cap < Isa::avx2 && needs_avx(features, count)) return 0;
    return 1;
}

std::once_flag g_once;
std::string g_env_error;

}  // namespace

void install_hooks() {
    std::call_once(g_once, [] {
        halide_set_error_handler(on_halide_error);
        const char *env = std::getenv("AMQ_ISA");
        if (env && *env) {
            if (!std::strcmp(env, "avx512"))
                g_cap = Isa::avx512;
            else if (!std::strcmp(env, "avx2"))
                g_cap = Isa::avx2;
            else if (!std::strcmp(env, "sse41"))
                g_cap = Isa::sse41;
            else
                g_env_error = std::string("AMQ_ISA='") + env +
                              "' is not a kernel variant (expected avx512, avx2 or sse41)";
        }
        halide_set_custom_can_use_target_features(can_use);
        halide_set_custom_do_par_for(pool::par_for);
        if (pool::spin_us() < 0)
            g_env_error = std::string("AMQ_SPIN_US='") + std::getenv("AMQ_SPIN_US") +
                          "' is not a spin time (expected microseconds, 0..1000000)";
    });
    if (!g_env_error.empty()) throw Error(g_env_error);
}

Isa selected_isa() {
    install_hooks();
    // Ask the same question the wrappers ask, with the features of each variant.
    uint64_t f512[2] = {0, 0}, f2[2] = {0, 0};
    auto set = [](uint64_t *f, halide_target_feature_t x) {
        f[int(x) / 64] |= 1ull << (int(x) % 64);
    };
    for (auto x :
         {halide_target_feature_avx, halide_target_feature_avx2, halide_target_feature_fma,
          halide_target_feature_f16c, halide_target_feature_sse41, halide_target_feature_avx512,
          halide_target_feature_avx512_skylake, halide_target_feature_avx512_cannonlake,
          halide_target_feature_avx512_sapphirerapids})
        set(f512, x);
    for (auto x : {halide_target_feature_avx, halide_target_feature_avx2, halide_target_feature_fma,
                   halide_target_feature_f16c, halide_target_feature_sse41})
        set(f2, x);
    if (can_use(2, f512)) return Isa::avx512;
    if (can_use(2, f2)) return Isa::avx2;
    return Isa::sse41;
}

void check(int status, const char *kernel) {
    if (status == 0) return;
    std::string msg =
        std::string(kernel) + ": " +
        (g_last_error.empty() ? "Halide error " + std::to_string(status) : g_last_error);
    g_last_error.clear();
    throw Error(msg);
}

}  // namespace amq::detail
