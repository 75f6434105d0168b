#include "amq/autotune/jit_kernel.h"

#include <chrono>
#include <mutex>
#include <stdexcept>

namespace amq::tune {
namespace {

std::mutex error_mutex;
std::string last_error;

void record_error(Halide::JITUserContext *, const char *msg) {
    std::lock_guard<std::mutex> lock(error_mutex);
    last_error = msg ? msg : "";
    while (!last_error.empty() && last_error.back() == '\n') last_error.pop_back();
}

void install_error_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        Halide::JITHandlers h;
        h.custom_error = record_error;
        Halide::Internal::JITSharedRuntime::set_default_handlers(h);
    });
}

}  // namespace

std::string last_runtime_error() {
    std::lock_guard<std::mutex> lock(error_mutex);
    return last_error;
}

JitKernel::JitKernel(Halide::Pipeline pipeline, const Halide::Target &target) {
    install_error_handler();
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
