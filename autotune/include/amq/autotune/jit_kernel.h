// A Halide pipeline JIT-compiled for a target and called through its argv entry
// point, like an AOT kernel: no per-call argument handling as in
// Pipeline::realize (about 0.1 us a call, measurable on a 2 us kernel). Its
// parallel loops run on amq's thread pool (amq/thread_pool.h), as the AOT
// kernels' do: set its threads with pool::set_threads.
#pragma once

#include <string>
#include <vector>

#include "Halide.h"
#include "amq/autotune/pipeline.h"

namespace amq::tune {

class JitKernel {
public:
    // Compiles `pipeline` for `target`. Throws Halide's errors (Halide::Error)
    // when the schedule cannot be compiled.
    JitKernel(Halide::Pipeline pipeline, const Halide::Target &target);

    // One call with the arguments of an Invocation bound by name.
    class Call {
    public:
        // Runs the kernel; 0, or Halide's error code (see last_runtime_error()).
        int operator()() const { return fn_(const_cast<const void **>(args_.data())); }

    private:
        friend class JitKernel;
        Halide::Internal::JITModule::argv_wrapper fn_ = nullptr;
        std::vector<const void *> args_;
    };
    // Throws std::runtime_error naming an argument `inv` does not provide.
    Call bind(Invocation &inv) const;

    double compile_ms() const { return compile_ms_; }

private:
    Halide::Internal::JITModule module_;
    std::vector<std::string> arg_names_;  // inputs, in the entry point's order
    double compile_ms_ = 0;
};

// The last error Halide's JIT runtime reported in this process ("" if none),
// which it would otherwise print.
std::string last_runtime_error();

// The ISA variants of the build's multi-target kernel libraries, most capable
// first, named "avx512", "avx2", "sse41" (from the targets the build compiles,
// AMQ_KERNEL_TARGETS in CMakeLists.txt), each with its Halide target.
struct IsaVariant {
    std::string name;
    Halide::Target target;
};
const std::vector<IsaVariant> &isa_variants();
// The variant the runtime picks on a CPU with `host`'s features: the first
// whose features the host all has.
std::string best_isa(const Halide::Target &host);
// The JIT target of `isa` on `host`: the host's features capped to those of the
// variant (what the AOT variant is compiled for). Throws std::invalid_argument
// for a name that is no variant, or when the host lacks one of its features.
Halide::Target isa_target(const Halide::Target &host, const std::string &isa);

}  // namespace amq::tune
