// Writing a whole buffer to a file descriptor, retrying short writes and
// EINTR: the one copy the model writer, the tuner's records and its child
// processes' messages all use.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace amq {

// Writes all n bytes of data to fd. False on an error (errno says which) or
// when the file takes nothing.
inline bool write_all(int fd, const void *data, size_t n) {
    const auto *p = static_cast<const uint8_t *>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

}  // namespace amq
