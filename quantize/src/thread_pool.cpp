// amq's thread pool: a small pool whose workers spin between kernels.
// See amq/thread_pool.h for why; the protocol:
//
//   caller                                worker (index w, taking part if w < wanted)
//   claim the pool (owned, or run serial)  wait until gen changes: spin, then sleep
//   job = &j; ++gen; wake sleepers         ++busy; load job; run tasks; --busy
//   run tasks
//   job = null; wait until busy == 0       (a worker that loads job after this
//   release the pool                        sees null and takes nothing)
//
// Tasks are claimed one at a time from j.next, so a late worker simply finds
// none left. The seq_cst order of "job = null; read busy" against "++busy; read
// job" guarantees that the caller never returns while a worker can still touch j.
#include "amq/thread_pool.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define AMQ_CPU_RELAX() _mm_pause()
#else
#define AMQ_CPU_RELAX() std::this_thread::yield()
#endif

namespace amq::pool {
namespace {

using Clock = std::chrono::steady_clock;

// Spinning threads yield the CPU every this many pauses (tens of microseconds),
// so that a thread which shares their CPU can run. More often costs the
// parallel speed: measured with `amq bench gemv --shape 4096x2048 --bits W2A2
// --threads 2` (tuned kernels, 64 tiles per task), yielding every 64 pauses
// gave 1.68x one thread, every 1024 pauses 1.89x (medians of five runs;
// docs/PERFORMANCE.md).
constexpr unsigned kYieldEvery = 1024;

struct Job {
    Task task;
    void *uc;
    uint8_t *closure;
    int min, size;
    std::atomic<int> next{0};
    std::atomic<int> status{0};
};

thread_local bool t_in_task = false;  // a nested parallel loop runs serially

int run_serial(void *uc, Task task, int min, int size, uint8_t *closure) {
    for (int i = min; i < min + size; ++i)
        if (int r = task(uc, i, closure)) return r;
    return 0;
}

// Takes tasks from j until none is left; after a failure the rest are skipped.
void run_tasks(Job &j) {
    const bool outer = t_in_task;
    t_in_task = true;
    for (int i; (i = j.next.fetch_add(1, std::memory_order_relaxed)) < j.size;) {
        if (j.status.load(std::memory_order_relaxed) != 0) continue;
        if (int r = j.task(j.uc, j.min + i, j.closure)) {
            int zero = 0;
            j.status.compare_exchange_strong(zero, r);
        }
    }
    t_in_task = outer;
}

int spin_from_env() {
    const char *env = std::getenv("AMQ_SPIN_US");
    if (!env || !*env) return 100;
    char *end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (*end != '\0' || v < 0 || v > 1000000) return -1;
    return int(v);
}

class Pool {
public:
    explicit Pool(int spin_us) : spin_(spin_us < 0 ? 100 : spin_us) {}

    // Never destroyed (see the_pool()): the workers live as long as the process.
    void set_threads(int n) {
        std::lock_guard<std::mutex> lock(m_);
        const int workers = n - 1;
        if (workers == wanted_.load() && int(threads_.size()) >= workers) return;
        while (int(threads_.size()) < workers) {
            const int index = int(threads_.size());
            threads_.emplace_back([this, index] { work(index); });
            threads_.back().detach();
        }
        wanted_.store(workers);
        cv_.notify_all();
    }

    int run(void *uc, Task task, int min, int size, uint8_t *closure) {
        bool free = false;
        if (t_in_task || size <= 1 || wanted_.load(std::memory_order_relaxed) == 0 ||
            !owned_.compare_exchange_strong(free, true, std::memory_order_acquire))
            return run_serial(uc, task, min, size, closure);
        Job j;
        j.task = task;
        j.uc = uc;
        j.closure = closure;
        j.min = min;
        j.size = size;
        job_.store(&j);
        gen_.fetch_add(1);
        if (sleeping_.load() > 0) {
            std::lock_guard<std::mutex> lock(m_);
            cv_.notify_all();
        }
        run_tasks(j);
        job_.store(nullptr);
        for (unsigned s = 1; busy_.load() != 0; ++s) {
            AMQ_CPU_RELAX();
            if (s % kYieldEvery == 0) std::this_thread::yield();  // a worker may share our CPU
        }
        owned_.store(false, std::memory_order_release);
        return j.status.load();
    }

private:
    void work(int index) {
        uint64_t seen = gen_.load();
        for (;;) {
            if (!spin_until_new(seen)) {
                std::unique_lock<std::mutex> lock(m_);
                sleeping_.fetch_add(1);
                cv_.wait(lock, [&] { return gen_.load() != seen && index < wanted_.load(); });
                sleeping_.fetch_sub(1);
            }
            seen = gen_.load();
            if (index >= wanted_.load()) continue;
            busy_.fetch_add(1);
            if (Job *j = job_.load()) run_tasks(*j);
            busy_.fetch_sub(1);
        }
    }

    // Spins for up to spin_ while the generation stays `seen`; true if it moved.
    bool spin_until_new(uint64_t seen) const {
        if (spin_.count() == 0) return false;
        const auto start = Clock::now();
        for (unsigned s = 1;; ++s) {
            if (gen_.load(std::memory_order_acquire) != seen) return true;
            AMQ_CPU_RELAX();
            if (s % kYieldEvery == 0) {
                // Let a thread that shares this CPU run (on a loaded machine the
                // scheduler may put a worker beside the caller it waits for).
                std::this_thread::yield();
                if (Clock::now() - start > spin_) return false;
            }
        }
    }

    const std::chrono::microseconds spin_;
    std::mutex m_;  // threads_, and the sleep/wake of the workers
    std::condition_variable cv_;
    std::vector<std::thread> threads_;
    std::atomic<int> wanted_{0};    // workers that take part: threads - 1
    std::atomic<int> sleeping_{0};  // workers waiting on cv_
    std::atomic<int> busy_{0};      // workers inside a job
    std::atomic<uint64_t> gen_{0};  // moves once per parallel loop
    std::atomic<Job *> job_{nullptr};
    std::atomic<bool> owned_{false};  // a caller runs a parallel loop
};

std::atomic<Pool *> g_pool{nullptr};
std::atomic<int> g_threads{1};
std::once_flag g_fork_once;

// In a child of fork() the workers are gone: start a new pool on first use
// (the old one is left as it is; its mutex may have been held at the fork).
void after_fork_in_child() { g_pool.store(nullptr); }

Pool &the_pool() {
    Pool *p = g_pool.load(std::memory_order_acquire);
    if (p) return *p;
    static std::mutex create;
    std::lock_guard<std::mutex> lock(create);
    p = g_pool.load();
    if (!p) {
        std::call_once(g_fork_once, [] { pthread_atfork(nullptr, nullptr, after_fork_in_child); });
        p = new Pool(spin_from_env());
        p->set_threads(g_threads.load());
        g_pool.store(p, std::memory_order_release);
    }
    return *p;
}

}  // namespace

int spin_us() { return spin_from_env(); }

void set_threads(int n) {
    g_threads.store(n);
    if (n > 1 || g_pool.load()) the_pool().set_threads(n);
}

int threads() { return g_threads.load(std::memory_order_relaxed); }

int par_for(void *uc, Task task, int min, int size, uint8_t *closure) {
    if (g_threads.load(std::memory_order_relaxed) <= 1)
        return run_serial(uc, task, min, size, closure);
    return the_pool().run(uc, task, min, size, closure);
}

}  // namespace amq::pool
