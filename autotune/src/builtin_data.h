// Data files built into the library (generated as builtin_data.cpp by
// autotune/CMakeLists.txt): the knob spaces and the hand defaults, so that the
// tuner needs no source tree at run time.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace amq::tune::detail {

// (pipeline, text of autotune/spaces/<pipeline>.json) for every shipped space.
const std::vector<std::pair<std::string, std::string>> &builtin_spaces();
// The hand defaults and the tunable pipelines of schedules/manifest.json (JSON).
const char *builtin_defaults();

}  // namespace amq::tune::detail
