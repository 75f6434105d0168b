// Runs work in a forked child process with a time limit, so that a candidate
// that crashes (SIGSEGV, SIGILL, abort) or hangs cannot take the tuner down.
#pragma once

#include <functional>
#include <string>

namespace amq::tune {

// What the child reports to the parent while it works.
class ChildChannel {
public:
    explicit ChildChannel(int fd) : fd_(fd) {}
    // The step the child is at ("compile", "verify", "time"): if it dies, the
    // parent knows where.
    void stage(const std::string &name);
    // The result (one line of text, e.g. compact JSON).
    void result(const std::string &text);

private:
    void send(char tag, const std::string &text);
    int fd_;
};

struct ChildOutcome {
    enum class End { exited, signaled, timed_out } end = End::exited;
    int exit_code = 0;        // End::exited
    int signal = 0;           // End::signaled
    std::string stage;        // the last stage the child reported
    std::string result;       // what it sent with result(); empty if nothing
    std::string stderr_tail;  // the last few KB it wrote to stderr
    double seconds = 0;       // wall time
    // Sanitizer builds: the child was stopped by a sanitizer's report (its end
    // is in stderr_tail). Not a candidate's failure but an error of the build
    // under test: AddressSanitizer's report of a SIGSEGV counts too.
    bool sanitizer_report = false;

    // "killed by SIGSEGV (Segmentation fault) while compile", "timed out after
    // 20 s while time", "exited with 3"...
    std::string describe() const;
};

// Forks; the child runs body(channel) with its stdout and stderr captured, then exits
// without running the parent's destructors. The parent waits up to
// timeout_seconds and kills the child (only it, by its process id) when it
// runs longer. Only call while this process runs a single thread: a forked
// child has only the calling thread.
ChildOutcome run_isolated(const std::function<void(ChildChannel &)> &body, double timeout_seconds);

}  // namespace amq::tune
