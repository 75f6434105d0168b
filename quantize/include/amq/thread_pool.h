// amq's thread pool for the kernels' parallel loops: the halide_do_par_for of
// the AOT kernels (runtime/ installs it) and of the tuner's JIT-compiled
// candidates (autotune/ installs it as Halide's JIT do_par_for handler), so
// that a candidate is timed on the pool the product runs it on. It lives in
// quantize/, the plain C++ library that runtime/ and autotune/ both link
// (DESIGN.md, "who may use whom"); it needs no Halide: a task has the
// signature of Halide's halide_task_t.
//
// Halide's own pool puts its workers to sleep almost as soon as a parallel loop
// ends, and waking one costs several microseconds on a VM -- as much as a whole
// 4096x1024 product. amq's kernels are short and come in quick succession (the
// products of one RNN step), so here the workers spin for a while
// (AMQ_SPIN_US, default 100 microseconds) after each parallel loop before they
// sleep, and the calling thread takes tasks too. See docs/PERFORMANCE.md.
//
// Only one parallel loop runs on the pool at a time: a loop started while the
// pool is busy (another thread's kernel) or from inside a task runs serially on
// its caller, so many sessions in many threads never wait on each other.
#pragma once

#include <cstddef>
#include <cstdint>

namespace amq::pool {

// A task: task(user_context, index, closure), 0 or an error status.
using Task = int (*)(void *user_context, int index, uint8_t *closure);

// Threads that run a parallel loop, the caller included (n >= 1). The one
// thread-count state of the process: the kernels read it through threads().
void set_threads(int n);
int threads();

// Runs task(uc, i, closure) for i in [min, min + size) on the pool; returns the
// first non-zero status of a task.
int par_for(void *uc, Task task, int min, int size, uint8_t *closure);

// The spin time in microseconds (AMQ_SPIN_US, read once; default 100; -1 when
// the variable is not a spin time).
int spin_us();

// A product runs its parallel variant only with this many bytes of weights or
// more: below it, waking the pool costs more than the work it splits (measured
// on the 2-vCPU Zen 5 VM: 1024x1024 W2A2 took 2.5 us serial, 3.3 us on two
// threads; docs/PERFORMANCE.md). The runtime and the tuner both decide with
// runs_parallel(), so that a candidate is timed as the product runs it.
constexpr size_t kParallelMinBytes = 512 * 1024;
inline bool runs_parallel(int threads, size_t weight_bytes) {
    return threads > 1 && weight_bytes >= kParallelMinBytes;
}

}  // namespace amq::pool
