// amq's thread pool (amq/thread_pool.h), the halide_do_par_for of the
// kernels: every task runs exactly once, a failing task's status comes back,
// nested and concurrent parallel loops complete, the thread count can change
// between loops, the workers' sleep and wake-up both work, a forked child gets a
// working pool, and a parallel bgemv from many threads at once equals the serial
// one. ThreadSanitizer runs the ThreadPool.* tests (scripts/test.sh).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "amq/kernels.h"
#include "amq/reference.h"
#include "amq/thread_pool.h"

namespace amq {
namespace {

struct Counts {
    std::vector<std::atomic<int>> hits;
    int min = 0;
    int fail_at = INT32_MIN;  // this index returns status -7
    bool nested = false;      // each task runs a parallel loop of its own
    std::atomic<int> inner{0};
    explicit Counts(size_t n) : hits(n) {}
};

int count_task(void *, int i, uint8_t *closure) {
    auto &c = *reinterpret_cast<Counts *>(closure);
    c.hits.at(size_t(i - c.min)).fetch_add(1);
    if (c.nested) {
        Counts inner(5);
        const int r =
            pool::par_for(nullptr, count_task, 0, 5, reinterpret_cast<uint8_t *>(&inner));
        for (auto &h : inner.hits)
            if (h.load() == 1) c.inner.fetch_add(1);
        if (r) return r;
    }
    return i == c.fail_at ? -7 : 0;
}

// Runs one parallel loop over [min, min + size) and checks that every index ran once.
void expect_each_once(int min, int size) {
    Counts c{size_t(size)};
    c.min = min;
    ASSERT_EQ(
        pool::par_for(nullptr, count_task, min, size, reinterpret_cast<uint8_t *>(&c)),
        0);
    for (int i = 0; i < size; ++i)
        ASSERT_EQ(c.hits[size_t(i)].load(), 1) << "index " << min + i << " of " << size;
}

TEST(ThreadPool, RunsEveryTaskOnce) {
    for (int threads : {2, 3, 1, 4}) {
        set_num_threads(threads);
        for (int min : {0, -5, 100})
            for (int size : {0, 1, 2, 3, 17, 1000}) expect_each_once(min, size);
    }
    set_num_threads(1);
}

int record_thread(void *, int, uint8_t *closure) {
    auto &ids = *reinterpret_cast<std::vector<std::thread::id> *>(closure);
    static std::mutex m;
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(300);
    while (std::chrono::steady_clock::now() < until) {
    }
    std::lock_guard<std::mutex> lock(m);
    if (std::find(ids.begin(), ids.end(), std::this_thread::get_id()) == ids.end())
        ids.push_back(std::this_thread::get_id());
    return 0;
}

TEST(ThreadPool, WorkersTakePart) {
    // 100 tasks of 0.3 ms: a worker must take some, unless it was never
    // scheduled in 30 ms (five tries, for a loaded machine).
    set_num_threads(2);
    size_t most = 0;
    for (int attempt = 0; attempt < 5 && most < 2; ++attempt) {
        std::vector<std::thread::id> ids;
        ASSERT_EQ(pool::par_for(nullptr, record_thread, 0, 100,
                                          reinterpret_cast<uint8_t *>(&ids)),
                  0);
        most = std::max(most, ids.size());
    }
    EXPECT_EQ(most, 2u) << "threads that ran tasks";
    set_num_threads(1);
}

TEST(ThreadPool, WakesSleepingWorkers) {
    // Longer pauses than the spin time (AMQ_SPIN_US, 100 us by default), so the
    // workers go to sleep between loops and must be woken.
    set_num_threads(2);
    for (int rep = 0; rep < 20; ++rep) {
        expect_each_once(0, 64);
        std::this_thread::sleep_for(std::chrono::microseconds(rep % 2 ? 2000 : 10));
    }
    set_num_threads(1);
}

TEST(ThreadPool, ReturnsTheStatusOfAFailingTask) {
    set_num_threads(2);
    for (int at : {0, 5, 63}) {
        Counts c(64);
        c.fail_at = at;
        EXPECT_EQ(
            pool::par_for(nullptr, count_task, 0, 64, reinterpret_cast<uint8_t *>(&c)),
            -7)
            << "failing task " << at;
        EXPECT_EQ(c.hits[size_t(at)].load(), 1);
        for (auto &h : c.hits) EXPECT_LE(h.load(), 1);
    }
    expect_each_once(0, 64);  // the pool still works after a failure
    set_num_threads(1);
}

TEST(ThreadPool, NestedLoopsRunSerially) {
    set_num_threads(2);
    Counts c(40);
    c.nested = true;
    ASSERT_EQ(pool::par_for(nullptr, count_task, 0, 40, reinterpret_cast<uint8_t *>(&c)),
              0);
    for (auto &h : c.hits) EXPECT_EQ(h.load(), 1);
    EXPECT_EQ(c.inner.load(), 40 * 5);
    set_num_threads(1);
}

TEST(ThreadPool, ConcurrentCallersAllComplete) {
    // One loop uses the pool at a time; the others run serially on their callers.
    set_num_threads(2);
    std::vector<std::thread> callers;
    std::atomic<int> bad{0};
    for (int t = 0; t < 6; ++t)
        callers.emplace_back([&, t] {
            for (int rep = 0; rep < 300; ++rep) {
                const int size = 1 + (rep * 7 + t) % 40;
                Counts c{size_t(size)};
                if (pool::par_for(nullptr, count_task, 0, size,
                                            reinterpret_cast<uint8_t *>(&c)) != 0)
                    bad.fetch_add(1);
                for (auto &h : c.hits)
                    if (h.load() != 1) bad.fetch_add(1);
            }
        });
    for (auto &c : callers) c.join();
    EXPECT_EQ(bad.load(), 0);
    set_num_threads(1);
}

// A matrix large enough for the parallel bgemv (kernels.cpp: kParallelMinBytes).
struct BigProduct {
    BinaryMatrix W;
    BinaryVector a;
    std::vector<float> serial;
    BigProduct() {
        const size_t rows = 3001, cols = 1500, k_w = 2;  // 1.1 MB of planes, odd sizes
        std::mt19937_64 g(11);
        const size_t words = ref::words_for(cols);
        std::vector<uint64_t> planes(k_w * rows * words);
        for (auto &w : planes) w = g();
        for (size_t p = 0; p < k_w * rows; ++p)
            planes[p * words + words - 1] &= ref::last_word_mask(cols);
        std::normal_distribution<float> nd;
        std::vector<float> alpha(rows * k_w), bias(rows), x(cols);
        for (auto &v : alpha) v = std::abs(nd(g));
        for (auto &v : bias) v = nd(g);
        for (auto &v : x) v = nd(g);
        W = BinaryMatrix::from_planes(planes.data(), alpha.data(), int(k_w), rows, cols,
                                      bias.data());
        quantize_act(x.data(), cols, 2, 2, a);
        set_num_threads(1);
        serial.resize(rows);
        bgemv(W, a, serial.data());
    }
};

TEST(ThreadPool, ParallelBgemvFromManyThreadsEqualsSerial) {
    const BigProduct p;
    set_num_threads(2);
    std::vector<std::thread> callers;
    std::atomic<int> mismatches{0};
    for (int t = 0; t < 4; ++t)
        callers.emplace_back([&] {
            std::vector<float> y(p.serial.size());
            for (int rep = 0; rep < 50; ++rep) {
                bgemv(p.W, p.a, y.data());
                if (y != p.serial) mismatches.fetch_add(1);
            }
        });
    for (auto &c : callers) c.join();
    EXPECT_EQ(mismatches.load(), 0);
    set_num_threads(1);
}

// Not under ThreadSanitizer, which stops a forked child of a threaded process
// that starts threads (its die_after_fork).
TEST(ThreadPoolFork, ForkedChildGetsAWorkingPool) {
    const BigProduct p;
    set_num_threads(2);
    std::vector<float> y(p.serial.size());
    bgemv(p.W, p.a, y.data());  // the parent's workers exist now
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::vector<float> yc(p.serial.size());
        bgemv(p.W, p.a, yc.data());
        Counts c(100);
        const int r =
            pool::par_for(nullptr, count_task, 0, 100, reinterpret_cast<uint8_t *>(&c));
        bool ok = r == 0 && yc == p.serial;
        for (auto &h : c.hits) ok = ok && h.load() == 1;
        _exit(ok ? 0 : 3);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "the child died of signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(y, p.serial);
    set_num_threads(1);
}

}  // namespace
}  // namespace amq
