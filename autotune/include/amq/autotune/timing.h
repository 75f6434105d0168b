// The tuner times candidates with amq's one timing harness (amq/timing.h, in
// quantize/), as `amq bench` does: warm-up, calibrated calls per sample, a new
// random order each round, medians and spread.
#pragma once

#include "amq/timing.h"

namespace amq::tune {

using TimingOptions = timing::Options;
using Timing = timing::Result;

}  // namespace amq::tune
