// libFuzzer target: the model loader on arbitrary bytes. Any input must load or
// throw amq::st::FormatError; anything else (another exception, a crash, a
// sanitizer report) is a finding.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "amq/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try {
        amq::load_model_from_bytes(std::vector<uint8_t>(data, data + size), "fuzz.amq");
    } catch (const amq::st::FormatError &) {
    }
    return 0;
}
