// Internal: Halide runtime hooks (error handler, ISA cap). See halide_hooks.cpp.
#pragma once

#include "amq/kernels.h"

namespace amq::detail {

// Installs the error handler, the AMQ_ISA cap and amq's thread pool (reading
// AMQ_SPIN_US); call before any kernel. Throws amq::Error on a bad variable.
void install_hooks();
// The variant the multi-target wrappers pick under the current cap.
Isa selected_isa();
// Throws amq::Error("<kernel>: <Halide's message>") when status != 0.
void check(int status, const char *kernel);

}  // namespace amq::detail
