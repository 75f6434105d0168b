// Halide's own autoschedulers (Mullapudi2016, Adams2019, Li2018; plugins of
// the Halide package) applied to a pipeline's algorithm, for comparison.
#pragma once

#include <string>
#include <vector>

#include "Halide.h"
#include "amq/autotune/cpu_identity.h"
#include "amq/autotune/evaluate.h"
#include "amq/autotune/pipeline.h"

namespace amq::tune {

// The autoschedulers Halide 14 ships, in the order they are reported.
const std::vector<std::string> &autoscheduler_names();

// Path of the plugin library of `name` (found by CMake via find_package(Halide);
// AMQ_HALIDE_PLUGIN_DIR overrides the directory). Throws for an unknown name.
std::string autoscheduler_plugin(const std::string &name);

// The algorithm of `pipeline` in the candidate's data layout, scheduled by the
// candidate's autoscheduler with its machine setup. Loads the plugin on first
// use in this process; throws Halide's errors.
Halide::Pipeline autoschedule(const TunablePipeline &pipeline, const Candidate &candidate,
                              const Halide::Target &target);

// The runs that give `name` a fair chance: every data layout the pipeline
// offers x parallelism (the thread count, this machine's processors, 16) x the
// last-level cache taken as this CPU's L2 and as its L3 (capped at 32 MB, as
// virtual machines report made-up sizes). Estimates are the problem's real shape.
std::vector<Candidate> autoscheduler_candidates(const TunablePipeline &pipeline,
                                                const std::string &name, const CpuIdentity &cpu);

}  // namespace amq::tune
