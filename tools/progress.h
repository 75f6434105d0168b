// A progress line on stderr for long work: done/total, rate and time left.
// On a terminal it redraws one line at most 5 times a second; otherwise (logs,
// CI) it prints a line at every 10%.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace amq::tools {

class Progress {
public:
    Progress(std::string what, size_t total, std::string unit)
        : what_(std::move(what)),
          unit_(std::move(unit)),
          total_(total),
          tty_(isatty(STDERR_FILENO)),
          start_(clock::now()),
          last_(start_) {}

    void update(size_t done) {
        const auto now = clock::now();
        const bool finished = done >= total_;
        if (tty_) {
            if (!finished && now - last_ < std::chrono::milliseconds(200)) return;
        } else {
            const size_t decile = total_ ? done * 10 / total_ : 10;
            if (decile == last_decile_ && !finished) return;
            if (finished && printed_final_) return;
            last_decile_ = decile;
        }
        last_ = now;
        const double secs = std::chrono::duration<double>(now - start_).count();
        const double rate = secs > 0 ? double(done) / secs : 0.0;
        const double left = rate > 0 ? double(total_ - std::min(done, total_)) / rate : 0.0;
        const int width = 30, filled = total_ ? int(double(width) * done / total_) : width;
        std::fprintf(stderr, "%s%s [%s%s] %zu/%zu %s, %.0f %s/s, %.0f s left%s", tty_ ? "\r" : "",
                     what_.c_str(), std::string(size_t(filled), '#').c_str(),
                     std::string(size_t(width - filled), ' ').c_str(), done, total_, unit_.c_str(),
                     rate, unit_.c_str(), left, tty_ && !finished ? "" : "\n");
        std::fflush(stderr);
        if (finished) printed_final_ = true;
    }

private:
    using clock = std::chrono::steady_clock;
    std::string what_, unit_;
    size_t total_;
    bool tty_;
    clock::time_point start_, last_;
    size_t last_decile_ = size_t(-1);
    bool printed_final_ = false;
};

}  // namespace amq::tools
