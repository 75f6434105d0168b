// The names a generator class body uses, for amq's generator class templates
// (one template serving several registered generators): a class template does
// not see the member aliases of its dependent base Halide::Generator<Self>.
#pragma once

#include "Halide.h"

namespace amq::gen {

template <typename T>
using GeneratorParam = Halide::GeneratorParam<T>;
template <typename T>
using Input = Halide::GeneratorInput<T>;
template <typename T>
using Output = Halide::GeneratorOutput<T>;
template <typename T, int D>
using Buffer = Halide::Buffer<T, D>;

}  // namespace amq::gen
