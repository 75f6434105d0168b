#include "amq/autotune/records.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "amq/autotune/jit_kernel.h"
#include "amq/write_all.h"

namespace amq::tune {
namespace {

const char *kHeader =
    "{\"generated_by\":\"amq tune\",\"format\":\"amq-tune-records\",\"version\":1,"
    "\"about\":\"Written by amq tune, do not edit. Append-only: one JSON object per line, one "
    "line per measured candidate; see docs/TUNING.md.\"}\n";

nlohmann::json number_or_null(bool ok, double v) { return ok ? nlohmann::json(v) : nullptr; }

double number_or(const nlohmann::json &j, const char *key, double fallback) {
    return j.at(key).is_null() ? fallback : j.at(key).get<double>();
}

}  // namespace

std::string utc_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

bool Record::same_setting(const Record &o) const {
    return cpu.id == o.cpu.id && isa == o.isa && halide_version == o.halide_version &&
           target == o.target && problem == o.problem;
}

nlohmann::ordered_json record_to_json(const Record &r) {
    const Measurement &m = r.measurement;
    const Candidate &c = r.candidate;
    nlohmann::ordered_json j;
    j["format_version"] = kRecordFormatVersion;
    j["time"] = r.time;
    j["cpu"] = r.cpu.to_json();
    j["isa"] = r.isa;
    j["halide"] = r.halide_version;
    j["target"] = r.target;
    const nlohmann::ordered_json fields = problem_fields(r.problem);
    for (const auto &[key, value] : fields.items()) j[key] = value;
    j["source"] = r.source;
    j["rung"] = r.rung;
    j["knobs"] = c.knobs;
    if (c.autoscheduler.empty()) {
        j["autoscheduler"] = nullptr;
        j["machine"] = nullptr;
    } else {
        j["autoscheduler"] = c.autoscheduler;
        j["machine"] = {{"parallelism", c.machine.parallelism},
                        {"last_level_cache", c.machine.last_level_cache},
                        {"balance", c.machine.balance}};
    }
    j["kind"] = kind_name(m.kind);
    j["error"] = m.error;
    j["median_us"] = number_or_null(m.ok(), m.kernel.median_us);
    j["spread"] = number_or_null(m.ok(), m.kernel.spread);
    j["rounds"] = m.kernel.rounds;
    j["baseline_us"] = number_or_null(m.baseline.median_us > 0, m.baseline.median_us);
    j["baseline_spread"] = number_or_null(m.baseline.median_us > 0, m.baseline.spread);
    j["ratio"] = number_or_null(m.ok(), m.ratio());
    j["compile_ms"] = m.compile_ms;
    j["seconds"] = m.seconds;
    return j;
}

Record record_from_json(const nlohmann::json &j) {
    if (!j.is_object()) throw std::runtime_error("not a JSON object");
    if (!j.contains("format_version")) throw std::runtime_error("no \"format_version\"");
    if (j["format_version"] != kRecordFormatVersion)
        throw std::runtime_error("format_version " + j["format_version"].dump() +
                                 " (this amq reads " + std::to_string(kRecordFormatVersion) + ")");
    Record r;
    try {
        r.time = j.at("time").get<std::string>();
        r.cpu = CpuIdentity::from_json(j.at("cpu"));
        r.isa = j.contains("isa") ? j.at("isa").get<std::string>() : isa_variants().front().name;
        r.halide_version = j.at("halide").get<std::string>();
        r.target = j.at("target").get<std::string>();
        r.problem = problem_from_fields(j);
        r.source = j.at("source").get<std::string>();
        r.rung = j.at("rung").get<int>();
        r.candidate.knobs = j.at("knobs");
        if (!r.candidate.knobs.is_object()) throw std::runtime_error("\"knobs\" is not an object");
        if (!j.at("autoscheduler").is_null()) {
            r.candidate.autoscheduler = j.at("autoscheduler").get<std::string>();
            const auto &mp = j.at("machine");
            r.candidate.machine.parallelism = mp.at("parallelism").get<int>();
            r.candidate.machine.last_level_cache = mp.at("last_level_cache").get<uint64_t>();
            r.candidate.machine.balance = mp.at("balance").get<float>();
            r.candidate.check_edge_shape = false;
        }
        Measurement &m = r.measurement;
        const std::string kind = j.at("kind").get<std::string>();
        if (!parse_kind(kind, m.kind)) throw std::runtime_error("unknown kind '" + kind + "'");
        m.error = j.at("error").get<std::string>();
        m.kernel.median_us = number_or(j, "median_us", 0);
        m.kernel.spread = number_or(j, "spread", 0);
        m.kernel.rounds = j.at("rounds").get<int>();
        m.baseline.median_us = number_or(j, "baseline_us", 0);
        m.baseline.spread = number_or(j, "baseline_spread", 0);
        m.compile_ms = j.at("compile_ms").get<double>();
        m.seconds = j.at("seconds").get<double>();
        if (m.ok() && (m.kernel.median_us <= 0 || m.baseline.median_us <= 0))
            throw std::runtime_error("an ok record without positive median_us and baseline_us");
    } catch (const nlohmann::json::exception &e) {
        throw std::runtime_error(e.what());
    }
    return r;
}

std::vector<Record> RecordFile::load(const std::function<void(const std::string &)> &warn) const {
    std::vector<Record> out;
    std::ifstream f(path_);
    if (!f) return out;
    std::string line;
    for (size_t n = 1; std::getline(f, line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
            const nlohmann::json j = nlohmann::json::parse(line);
            if (j.is_object() && j.contains("generated_by")) continue;  // the header
            out.push_back(record_from_json(j));
        } catch (const std::exception &e) {
            if (warn)
                warn("records " + path_ + " line " + std::to_string(n) + " skipped: " + e.what());
        }
    }
    return out;
}

void RecordFile::append(const Record &r) const {
    const std::filesystem::path p(path_);
    if (p.has_parent_path()) {
        std::error_code ec;
        std::filesystem::create_directories(p.parent_path(), ec);
    }
    const int fd = open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("records " + path_ + ": cannot open: " + strerror(errno));
    std::string text;
    struct stat st {};
    if (fstat(fd, &st) == 0 && st.st_size == 0) {
        text = kHeader;
    } else {
        char last = '\n';
        if (pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n') text = "\n";
    }
    text += record_to_json(r).dump() + "\n";
    errno = EIO;  // for a write that stores nothing without setting errno
    const bool written = write_all(fd, text.data(), text.size());
    const int error = errno;
    close(fd);
    if (!written)
        throw std::runtime_error("records " + path_ + ": write failed: " + strerror(error));
}

}  // namespace amq::tune
