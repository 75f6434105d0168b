#include "amq/autotune/isolate.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "amq/write_all.h"

// Built with AddressSanitizer or ThreadSanitizer (cmake/amqSanitize.cmake):
// the child tells the parent when the sanitizer stops it with a report.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AMQ_SANITIZER_RUNTIME 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define AMQ_SANITIZER_RUNTIME 1
#endif
#endif
#ifdef AMQ_SANITIZER_RUNTIME
#include <sanitizer/common_interface_defs.h>
#endif

namespace amq::tune {
namespace {

constexpr size_t kStderrTail = 4096;

#ifdef AMQ_SANITIZER_RUNTIME
// The child's end of the message pipe, for the sanitizer's death callback: it
// runs after the report (also UndefinedBehaviorSanitizer's, with
// halt_on_error), just before the sanitizer exits.
int g_report_fd = -1;
void on_sanitizer_report() {
    static const char msg[] = "X\n";
    if (g_report_fd >= 0) write_all(g_report_fd, msg, sizeof msg - 1);  // false: parent gone
}
#endif

// Splits the child's messages ("S<stage>\n", "R<result>\n", "X\n" for a
// sanitizer's report) as they arrive.
void take_messages(std::string &buf, ChildOutcome &out) {
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
        const std::string line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        if (line.empty()) continue;
        if (line[0] == 'S') out.stage = line.substr(1);
        if (line[0] == 'R') out.result = line.substr(1);
        if (line[0] == 'X') out.sanitizer_report = true;
    }
}

}  // namespace

void ChildChannel::send(char tag, const std::string &text) {
    std::string line(1, tag);
    for (char c : text) line += (c == '\n') ? ' ' : c;
    line += '\n';
    write_all(fd_, line.data(), line.size());  // false: the parent is gone, nothing to tell
}

void ChildChannel::stage(const std::string &name) { send('S', name); }
void ChildChannel::result(const std::string &text) { send('R', text); }

std::string ChildOutcome::describe() const {
    std::string where = stage.empty() ? "" : " while " + stage;
    switch (end) {
        case End::exited:
            if (sanitizer_report)
                return "stopped by a sanitizer report (exit status " + std::to_string(exit_code) +
                       ")" + where;
            return "exited with " + std::to_string(exit_code) + where;
        case End::signaled: {
            const char *abbrev = sigabbrev_np(signal);
            return "killed by " + (abbrev ? "SIG" + std::string(abbrev) : std::to_string(signal)) +
                   " (" + strsignal(signal) + ")" + where;
        }
        case End::timed_out:
            return "timed out after " + std::to_string(int(seconds + 0.5)) + " s" + where;
    }
    return "?";
}

ChildOutcome run_isolated(const std::function<void(ChildChannel &)> &body, double timeout_seconds) {
    int msg[2], err[2];
    if (pipe(msg) != 0) throw std::runtime_error(std::string("pipe: ") + strerror(errno));
    if (pipe(err) != 0) {
        close(msg[0]);
        close(msg[1]);
        throw std::runtime_error(std::string("pipe: ") + strerror(errno));
    }
    std::fflush(stdout);
    std::fflush(stderr);
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + strerror(errno));
    if (pid == 0) {
        close(msg[0]);
        close(err[0]);
        // Both the child's stdout and stderr go to the parent's capture: a
        // compiler's or plugin's chatter must not mix into the tool's output.
        dup2(err[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        close(err[1]);
        ChildChannel channel(msg[1]);
#ifdef AMQ_SANITIZER_RUNTIME
        g_report_fd = msg[1];
        __sanitizer_set_death_callback(on_sanitizer_report);
#endif
        int code = 0;
        try {
            body(channel);
        } catch (const std::exception &e) {
            channel.stage(std::string("uncaught exception: ") + e.what());
            code = 3;
        } catch (...) {
            channel.stage("uncaught exception");
            code = 3;
        }
        _exit(code);  // no destructors or atexit handlers of the parent's state
    }
    close(msg[1]);
    close(err[1]);

    ChildOutcome out;
    std::string msg_buf, err_buf;
    bool msg_open = true, err_open = true, timed_out = false;
    auto elapsed = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    while (msg_open || err_open) {
        const double left = timeout_seconds - elapsed();
        if (left <= 0) {
            timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        pollfd fds[2] = {{msg_open ? msg[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
        int n = poll(fds, 2, int(std::min(left, 0.25) * 1000) + 1);
        if (n < 0 && errno != EINTR) break;
        char buf[4096];
        if (fds[0].revents) {
            ssize_t r = read(msg[0], buf, sizeof buf);
            if (r > 0) {
                msg_buf.append(buf, size_t(r));
                take_messages(msg_buf, out);
            } else if (r == 0 || errno != EINTR) {
                msg_open = false;
            }
        }
        if (fds[1].revents) {
            ssize_t r = read(err[0], buf, sizeof buf);
            if (r > 0) {
                err_buf.append(buf, size_t(r));
                if (err_buf.size() > 2 * kStderrTail)
                    err_buf.erase(0, err_buf.size() - kStderrTail);
            } else if (r == 0 || errno != EINTR) {
                err_open = false;
            }
        }
    }
    close(msg[0]);
    close(err[0]);
    // The pipes close when the child exits; wait for it within the time limit too.
    int status = 0;
    for (;;) {
        const pid_t w = waitpid(pid, &status, timed_out ? 0 : WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) break;
        if (w == 0 && elapsed() >= timeout_seconds) {
            timed_out = true;
            kill(pid, SIGKILL);
        } else if (w == 0) {
            usleep(1000);
        }
    }
    out.seconds = elapsed();
    if (err_buf.size() > kStderrTail) err_buf.erase(0, err_buf.size() - kStderrTail);
    out.stderr_tail = err_buf;
    if (timed_out) {
        out.end = ChildOutcome::End::timed_out;
    } else if (WIFSIGNALED(status)) {
        out.end = ChildOutcome::End::signaled;
        out.signal = WTERMSIG(status);
    } else {
        out.end = ChildOutcome::End::exited;
        out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    return out;
}

}  // namespace amq::tune
