// 64-byte aligned storage for the buffers the kernels stream through: a weight
// tile or an activation word block then never straddles a cache line (the
// tuner measured ~10% on bgemv 4096x1024 between aligned and malloc-aligned
// weights, docs/TUNING.md).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace amq {

constexpr std::size_t kBufferAlignment = 64;

template <class T>
struct AlignedAllocator {
    using value_type = T;
    AlignedAllocator() noexcept = default;
    template <class U>
    AlignedAllocator(const AlignedAllocator<U> &) noexcept {}

    T *allocate(std::size_t n) {
        if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
        return static_cast<T *>(::operator new(n * sizeof(T), std::align_val_t(kBufferAlignment)));
    }
    void deallocate(T *p, std::size_t) noexcept {
        ::operator delete(p, std::align_val_t(kBufferAlignment));
    }
    template <class U>
    bool operator==(const AlignedAllocator<U> &) const noexcept {
        return true;
    }
    template <class U>
    bool operator!=(const AlignedAllocator<U> &) const noexcept {
        return false;
    }
};

template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace amq
