// Internal: amq's halide_do_par_for, installed by install_hooks().
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

#include <cstdint>

#include "HalideRuntime.h"

namespace amq::detail {

// Threads that run a parallel loop, the caller included (n >= 1).
void pool_set_threads(int n);

// The halide_do_par_for of amq's kernels: runs task(uc, i, closure) for i in
// [min, min + size) on the pool; returns the first non-zero status of a task.
int pool_do_par_for(void *uc, halide_task_t task, int min, int size, uint8_t *closure);

// The spin time in microseconds (AMQ_SPIN_US, read once; default 100).
int pool_spin_us();

}  // namespace amq::detail
