#include "amq/autotune/jit_kernel.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <stdexcept>

#include "amq/thread_pool.h"
#include "isa_knobs.h"

namespace amq::tune {
namespace {

std::mutex error_mutex;
std::string last_error;

void record_error(Halide::JITUserContext *, const char *msg) {
    std::lock_guard<std::mutex> lock(error_mutex);
    last_error = msg ? msg : "";
    while (!last_error.empty() && last_error.back() == '\n') last_error.pop_back();
}

// The candidates' parallel loops run on amq's thread pool (amq/thread_pool.h),
// the one the AOT kernels run on, not on the JIT runtime's own. A JIT task
// takes the JITUserContext where an AOT task takes a void *: the same call.
int pool_par_for(Halide::JITUserContext *uc, int (*task)(Halide::JITUserContext *, int, uint8_t *),
                 int min, int size, uint8_t *closure) {
    return pool::par_for(uc, reinterpret_cast<pool::Task>(task), min, size, closure);
}

void install_handlers() {
    static std::once_flag once;
    std::call_once(once, [] {
        Halide::JITHandlers h;
        h.custom_error = record_error;
        h.custom_do_par_for = pool_par_for;
        Halide::Internal::JITSharedRuntime::set_default_handlers(h);
    });
}

bool has_all_features_of(const Halide::Target &host, const Halide::Target &variant,
                         std::string *missing = nullptr) {
    for (int f = 0; f < Halide::Target::FeatureEnd; ++f) {
        const auto feature = Halide::Target::Feature(f);
        if (variant.has_feature(feature) && !host.has_feature(feature)) {
            if (missing) *missing = Halide::Target::feature_to_name(feature);
            return false;
        }
    }
    return true;
}

}  // namespace

const std::vector<IsaVariant> &isa_variants() {
    static const std::vector<IsaVariant> variants = [] {
        std::vector<IsaVariant> v;
        const std::string list = AMQ_KERNEL_TARGETS;  // "t1,t2,t3"
        for (size_t start = 0; start <= list.size();) {
            const size_t end = std::min(list.find(',', start), list.size());
            if (end > start) {
                const Halide::Target t(list.substr(start, end - start));
                v.push_back({gen::isa_name_of(t), t});
            }
            start = end + 1;
        }
        return v;
    }();
    return variants;
}

std::string best_isa(const Halide::Target &host) {
    for (const IsaVariant &v : isa_variants())
        if (has_all_features_of(host, v.target)) return v.name;
    return isa_variants().empty() ? "sse41" : isa_variants().back().name;
}

Halide::Target isa_target(const Halide::Target &host, const std::string &isa) {
    std::string names;
    for (const IsaVariant &v : isa_variants()) {
        names += (names.empty() ? "" : ", ") + v.name;
        if (v.name != isa) continue;
        std::string missing;
        if (!has_all_features_of(host, v.target, &missing))
            throw std::invalid_argument("ISA variant " + isa + ": this CPU (" + host.to_string() +
                                        ") lacks its feature " + missing);
        Halide::Target t(host.os, host.arch, host.bits);
        for (int f = 0; f < Halide::Target::FeatureEnd; ++f) {
            const auto feature = Halide::Target::Feature(f);
            if (host.has_feature(feature) && v.target.has_feature(feature)) t.set_feature(feature);
        }
        return t;
    }
    throw std::invalid_argument("ISA variant '" + isa + "': not a variant of the kernels (" +
                                names + ")");
}

std::string last_runtime_error() {
    std::lock_guard<std::mutex> lock(error_mutex);
    return last_error;
}

JitKernel::JitKernel(Halide::Pipeline pipeline, const Halide::Target &target) {
    install_handlers();
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<Halide::Argument> args = pipeline.infer_arguments();
    for (const auto &a : args) arg_names_.push_back(a.name);
    Halide::Module m =
        pipeline.compile_to_module(args, "amq_candidate", target.with_feature(Halide::Target::JIT));
    module_ = Halide::Internal::JITModule(m, m.functions().back());
    compile_ms_ =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

JitKernel::Call JitKernel::bind(Invocation &inv) const {
    Call c;
    c.fn_ = module_.argv_function();
    for (const auto &name : arg_names_) {
        const void *p = inv.arg(name);
        if (!p)
            throw std::runtime_error("the kernel takes an argument '" + name +
                                     "' the pipeline's inputs do not provide");
        c.args_.push_back(p);
    }
    for (halide_buffer_t *out : inv.outputs()) c.args_.push_back(out);
    return c;
}

}  // namespace amq::tune
